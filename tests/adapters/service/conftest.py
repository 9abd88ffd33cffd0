from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from handoff_adapters.service.registry import BACKENDS, BuildContext, register_backend
from handoff_core.ports import AgentBackend
from tests.fakes import ScriptedAgents


class NamedScriptedAgents(ScriptedAgents):
    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(**options)
        self.name = name


@pytest.fixture
def scripted_backends() -> Iterator[dict[str, NamedScriptedAgents]]:
    """Registers backend type "scripted" (the in-memory fake); yields the instances by name."""
    built: dict[str, NamedScriptedAgents] = {}

    def factory(
        name: str, options: dict[str, Any], path: str, context: BuildContext
    ) -> AgentBackend:
        built[name] = NamedScriptedAgents(name, **options)
        return built[name]

    register_backend("scripted", factory)
    try:
        yield built
    finally:
        del BACKENDS["scripted"]
        for agents in built.values():
            agents.close_all()
