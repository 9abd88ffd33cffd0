"""Conformance kits adapters must pass (see :mod:`handoff_adapters.testing.agent_backend`)."""

from handoff_adapters.testing.agent_backend import (
    CASES,
    AgentController,
    BackendFactory,
    CaseResult,
    Fault,
    KitReport,
    check_agent_backend,
)

__all__ = [
    "CASES",
    "AgentController",
    "BackendFactory",
    "CaseResult",
    "Fault",
    "KitReport",
    "check_agent_backend",
]
