"""Dropped streams, replays, delays, restarts: zero lost and zero duplicated agent messages."""

from __future__ import annotations

import anyio
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_core import State
from handoff_core.runtime import MemoryStore, Runtime
from tests.adapters.miaw.helpers import FAST, miaw_stack
from tests.fakes import RecordingChannel, RuleBot

pytestmark = pytest.mark.anyio

COUNT = 12


def _agent_texts(channel: RecordingChannel, conversation_id: str = "c1") -> list[str]:
    return [t for t in channel.texts(conversation_id) if t.startswith("agent says ")]


async def _chat_through_faults(sim: MiawSimulator) -> tuple[list[str], MiawBackend]:
    async with miaw_stack(sim) as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        for number in range(COUNT):
            sim.typing(miaw.id, True)
            sim.say(miaw.id, f"agent says {number}")
            # The agent waits for the user to see each line, so the lines really travel over
            # the (re)connected streams instead of all landing while one reconnect is under way.
            with anyio.fail_after(10):
                await stack.channel.wait_for(
                    "c1", lambda texts, keys, n=number: f"agent says {n}" in texts
                )
        await anyio.sleep(0.1)  # room for any late duplicate to show up
        return _agent_texts(stack.channel), stack.backend


EXPECTED = [f"agent says {n}" for n in range(COUNT)]


async def test_streams_dropped_every_few_events_lose_nothing() -> None:
    sim = MiawSimulator(auto_join="Jane Agent")
    sim.faults.drop_every = 3
    texts, backend = await _chat_through_faults(sim)
    assert texts == EXPECTED
    assert sim.stats["dropped_streams"] >= 3
    # Every drop but possibly the last (which can come after the chat ended) was reconnected.
    assert backend.stats["reconnects"] >= sim.stats["dropped_streams"] - 1


async def test_replayed_events_after_a_reconnect_are_not_repeated() -> None:
    sim = MiawSimulator(auto_join="Jane Agent")
    sim.faults.drop_every = 2
    sim.faults.replay = True
    texts, backend = await _chat_through_faults(sim)
    assert texts == EXPECTED
    assert backend.stats["duplicates"] > 0  # replay and the entries list both resent them


async def test_delayed_events_arrive_in_order() -> None:
    sim = MiawSimulator(auto_join="Jane Agent")
    sim.faults.event_delay = 0.01
    texts, _ = await _chat_through_faults(sim)
    assert texts == EXPECTED


async def test_server_dropping_all_streams_mid_chat() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.drop_streams()
        stack.sim.say(miaw.id, "agent says 0")  # said while nobody is connected
        stack.sim.say(miaw.id, "agent says 1")
        await stack.wait_text("agent says 1")
        assert await stack.state() is State.AGENT_CONNECTED
    assert _agent_texts(stack.channel) == ["agent says 0", "agent says 1"]


async def test_a_new_process_resumes_from_the_stored_cursor() -> None:
    """Crash after the agent joined; the agent talks meanwhile; a new process picks it up."""
    sim = MiawSimulator(auto_join="Jane Agent")
    store = MemoryStore(serialize=True)
    async with serve(sim.app) as url:
        channel = RecordingChannel()
        async with MiawBackend(url, sim.org_id, sim.developer_name, **FAST) as first:
            runtime = Runtime(bot=RuleBot(), agents=first, channel=channel, store=store)
            async with runtime.running():
                await runtime.user_said("c1", "agent")
                await channel.wait_for(
                    "c1",
                    lambda texts, _: (
                        "agent says 0" in texts or "Jane Agent has joined the chat." in texts
                    ),
                )
                miaw_id = next(iter(sim.conversations))
                sim.say(miaw_id, "agent says 0")
                await channel.wait_for("c1", lambda texts, _: "agent says 0" in texts)
        # The first process is gone. The agent goes on talking.
        sim.say(miaw_id, "agent says 1")
        sim.say(miaw_id, "agent says 2")
        async with MiawBackend(url, sim.org_id, sim.developer_name, **FAST) as second:
            runtime = Runtime(bot=RuleBot(), agents=second, channel=channel, store=store)
            async with runtime.running():
                await channel.wait_for("c1", lambda texts, _: "agent says 2" in texts)
                sim.say(miaw_id, "agent says 3")
                await channel.wait_for("c1", lambda texts, _: "agent says 3" in texts)
                await runtime.user_said("c1", "back again")
                with anyio.fail_after(5):
                    await sim.wait_for(
                        lambda s: s.conversation(miaw_id).user_messages == ["back again"]
                    )
                conversation = await runtime.get("c1")
                assert conversation is not None
                assert conversation.state is State.AGENT_CONNECTED
            assert second.stats["continuation_tokens"] == 1
            assert second.stats["reconciled"] >= 2
    assert _agent_texts(channel) == [f"agent says {n}" for n in range(4)]
