"""The backend conformance kit against the Live Agent simulator, over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from handoff_adapters._serve import serve
from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.liveagent.simulator import LiveAgentController, Simulator, SimulatorConfig
from handoff_adapters.testing import CASES, Fault, check_agent_backend
from handoff_core.ports import AgentBackend

pytestmark = pytest.mark.anyio


async def test_liveagent_passes_the_conformance_kit() -> None:
    simulator = Simulator(SimulatorConfig(agent_delay=None, greeting=None, queue_position=2))
    controller = LiveAgentController(simulator)
    async with serve(simulator.app) as url:
        config = LiveAgentConfig(
            endpoint=url,
            organization_id="00D000000000001",
            deployment_id="572000000000001",
            button_id="573000000000001",
            backoff=0.02,
            message_gap=0,
        )

        @asynccontextmanager
        async def make_backend() -> AsyncIterator[AgentBackend]:
            async with LiveAgentBackend(config) as backend:
                yield backend

        report = await check_agent_backend(make_backend, controller)
    assert [r.name for r in report.results] == list(CASES)
    for fault in Fault:
        result = report[f"fault:{fault.value}"]
        assert result.passed
        # Counted in both directions by the kit: nothing lost, nothing twice.
        assert (result.lost, result.duplicated) == (0, 0), result
    assert (report["resume"].lost, report["resume"].duplicated) == (0, 0)
    sessions = list(simulator.sessions.values())
    assert sum(s.reconnects for s in sessions) >= 1
    assert sum(s.duplicates_ignored for s in sessions) >= 1  # the dropped POST was retried
    assert all(not s.violations for s in sessions), [s.violations for s in sessions]
