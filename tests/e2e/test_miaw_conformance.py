"""The backend conformance kit against the MIAW simulator, over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawController, MiawSimulator
from handoff_adapters.testing import CASES, AgentController, Fault, check_agent_backend
from handoff_core.ports import AgentBackend

pytestmark = pytest.mark.anyio


async def test_miaw_passes_the_conformance_kit() -> None:
    simulator = MiawSimulator(queue_position=2)
    controller = MiawController(simulator)
    assert isinstance(controller, AgentController)
    async with serve(simulator.app) as url:

        @asynccontextmanager
        async def make_backend() -> AsyncIterator[AgentBackend]:
            async with MiawBackend(
                url,
                simulator.org_id,
                simulator.developer_name,
                reconnect_delay=0.02,
                reconnect_max_delay=0.1,
            ) as backend:
                yield backend

        report = await check_agent_backend(make_backend, controller)
    assert [r.name for r in report.results] == list(CASES)
    for fault in Fault:
        result = report[f"fault:{fault.value}"]
        assert result.passed
        assert (result.lost, result.duplicated) == (0, 0), result
    assert (report["resume"].lost, report["resume"].duplicated) == (0, 0)
    conversations = list(simulator.conversations.values())
    assert all(not c.violations for c in conversations), [c.violations for c in conversations]
    assert sum(c.duplicate_posts for c in conversations) >= 1  # the cut-off POST was retried
    assert simulator.stats["dropped_streams"] >= 2
    assert simulator.stats["injected:503"] == 1
