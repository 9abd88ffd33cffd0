"""Salesforce Live Agent (legacy Chat REST API) agent backend, its simulator and CLI commands.

Salesforce scheduled legacy Chat's retirement for February 14, 2026 (see
``../shared/protocols/liveagent.md`` §11); this backend stays isolated behind the
:class:`~handoff_core.ports.AgentBackend` port so moving to MIAW touches nothing else.
"""

from handoff_adapters.liveagent.client import LiveAgentBackend, LiveAgentConfig, LiveAgentError

__all__ = ["LiveAgentBackend", "LiveAgentConfig", "LiveAgentError"]
