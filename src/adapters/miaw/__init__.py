"""Salesforce Messaging for In-App and Web (MIAW, "Enhanced Chat") agent backend.

:class:`MiawBackend` implements :class:`~handoff_core.ports.AgentBackend`;
:mod:`handoff_adapters.miaw.simulator` is a loopback MIAW server for tests, demos and
``handoff simulate miaw``.
"""

from handoff_adapters.miaw.client import MiawBackend, MiawError, SessionExpired, conversation_uuid

__all__ = ["MiawBackend", "MiawError", "SessionExpired", "conversation_uuid"]
