"""Many MIAW conversations at once through faults: every agent message arrives exactly once."""

from __future__ import annotations

import anyio
import pytest

from handoff_adapters.miaw.simulator import MiawSimulator
from tests.adapters.miaw.helpers import miaw_stack

pytestmark = pytest.mark.anyio

CONVERSATIONS = 12
MESSAGES = 6


@pytest.mark.parametrize("replay", [False, True])
async def test_concurrent_conversations_through_dropped_streams(replay: bool) -> None:
    sim = MiawSimulator(auto_join="Jane Agent")
    sim.faults.drop_every = 2
    sim.faults.replay = replay
    async with miaw_stack(sim) as stack:
        ids = [f"c{n}" for n in range(CONVERSATIONS)]
        async with anyio.create_task_group() as group:
            for cid in ids:
                group.start_soon(stack.escalate, cid)
        for cid in ids:
            await stack.wait_text("Jane Agent has joined the chat.", cid)

        async def talk(cid: str) -> None:
            miaw_id = await stack.miaw_id(cid)
            for number in range(MESSAGES):
                sim.say(miaw_id, f"{cid} agent {number}")
                await stack.runtime.user_said(cid, f"{cid} user {number}")
                await anyio.sleep(0.002)

        async with anyio.create_task_group() as group:
            for cid in ids:
                group.start_soon(talk, cid)
        with anyio.fail_after(20):
            for cid in ids:
                await stack.wait_text(f"{cid} agent {MESSAGES - 1}", cid)
        await anyio.sleep(0.2)  # let any duplicate surface
    for cid in ids:
        agent = [t for t in stack.channel.texts(cid) if " agent " in t]
        assert agent == [f"{cid} agent {n}" for n in range(MESSAGES)]
        assert sim.conversation(await stack.miaw_id(cid)).user_messages == [
            f"{cid} user {n}" for n in range(MESSAGES)
        ]
    assert sim.stats["dropped_streams"] >= CONVERSATIONS
