"""Conformance kits adapters must pass (see :mod:`handoff_adapters.testing.agent_backend` and
:mod:`handoff_adapters.testing.store`)."""

from handoff_adapters.testing.agent_backend import (
    CASES,
    AgentController,
    BackendFactory,
    CaseResult,
    Fault,
    KitReport,
    check_agent_backend,
)
from handoff_adapters.testing.store import (
    STORE_CASES,
    StoreCaseResult,
    StoreFactory,
    StoreReport,
    check_store,
    realistic_conversation,
)

__all__ = [
    "CASES",
    "AgentController",
    "BackendFactory",
    "CaseResult",
    "Fault",
    "KitReport",
    "STORE_CASES",
    "StoreCaseResult",
    "StoreFactory",
    "StoreReport",
    "check_agent_backend",
    "check_store",
    "realistic_conversation",
]
