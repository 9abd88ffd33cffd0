"""The conformance kit catches broken backends: it counts what they lose and repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.liveagent.simulator import LiveAgentController, Simulator, SimulatorConfig
from handoff_adapters.testing import AgentController, check_agent_backend
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.ports import AgentBackend

pytestmark = pytest.mark.anyio


class Broken:
    """A Live Agent backend with one defect switched on."""

    name = "liveagent"

    def __init__(self, inner: LiveAgentBackend, defect: str) -> None:
        self.inner = inner
        self.defect = defect
        self.sent = 0

    async def check_availability(self, c: Conversation, r: fx.CheckAgentAvailability) -> bool:
        return await self.inner.check_availability(c, r)

    async def open(self, c: Conversation, r: fx.OpenAgentSession) -> ev.Cursor:
        return await self.inner.open(c, r)

    async def events(
        self, c: Conversation, s: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        async for event in self.inner.events(c, s, cursor):
            yield event
            if self.defect == "repeat" and isinstance(event, ev.AgentMessage):
                yield attrs.evolve(event, peer_id=f"{event.peer_id}-again")

    async def send(self, c: Conversation, m: fx.ForwardToAgent) -> None:
        self.sent += 1
        if self.defect == "lose" and self.sent == 2:
            return  # the second user message vanishes
        await self.inner.send(c, m)

    async def typing(self, c: Conversation, r: fx.SetAgentTyping) -> None:
        await self.inner.typing(c, r)

    async def close(self, c: Conversation, r: fx.CloseAgentSession) -> None:
        await self.inner.close(c, r)


@pytest.fixture
async def world() -> AsyncIterator[tuple[str, AgentController]]:
    simulator = Simulator(SimulatorConfig(agent_delay=None, greeting=None))
    async with serve(simulator.app) as url:
        yield url, LiveAgentController(simulator)


def factory(url: str, defect: str) -> Any:
    config = LiveAgentConfig(
        endpoint=url,
        organization_id="00D",
        deployment_id="572",
        button_id="573",
        backoff=0.01,
        message_gap=0,
    )

    @asynccontextmanager
    async def make() -> AsyncIterator[AgentBackend]:
        async with LiveAgentBackend(config) as inner:
            yield Broken(inner, defect)

    return make


async def test_the_kit_counts_repeated_messages(world: tuple[str, AgentController]) -> None:
    url, controller = world
    with pytest.raises(AssertionError) as info:
        await check_agent_backend(
            factory(url, "repeat"), controller, cases=["fault:server_error"], messages=3, wait=3
        )
    assert "fault:server_error: after server_error: 0 lost, 3 duplicated" in str(info.value)


async def test_the_kit_counts_lost_messages(world: tuple[str, AgentController]) -> None:
    url, controller = world
    with pytest.raises(AssertionError, match="waiting until the agent receives every user message"):
        await check_agent_backend(
            factory(url, "lose"), controller, cases=["messages_both_ways"], messages=3, wait=1
        )


async def test_a_sound_backend_passes_the_chosen_cases(world: tuple[str, AgentController]) -> None:
    url, controller = world
    report = await check_agent_backend(
        factory(url, "none"), controller, cases=["queue_then_join", "fault:delay"], messages=2
    )
    assert [r.name for r in report.results] == ["queue_then_join", "fault:delay"]
    assert all(r.passed for r in report.results)
    assert (report.lost, report.duplicated) == (0, 0)


async def test_unknown_cases_are_refused(world: tuple[str, AgentController]) -> None:
    url, controller = world
    with pytest.raises(ValueError, match="unknown case"):
        await check_agent_backend(factory(url, "none"), controller, cases=["teleport"])
