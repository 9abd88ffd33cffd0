"""The MIAW backend driven by the runtime, over real loopback HTTP against the simulator."""

from __future__ import annotations

import anyio
import pytest

from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_core import State
from tests.adapters.miaw.helpers import miaw_stack

pytestmark = pytest.mark.anyio


async def test_agent_joins_talks_and_ends() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        assert await stack.state() is State.AGENT_CONNECTED
        await stack.runtime.user_said("c1", "my order is late")
        with anyio.fail_after(5):
            await stack.sim.wait_for(lambda _: miaw.user_messages == ["my order is late"])
        stack.sim.say(miaw.id, "Let me check")
        await stack.wait_text("Let me check")
        stack.sim.end(miaw.id)
        await stack.wait_state(State.BOT)
    # The user's own message came back on the stream (the echo) and was not shown to them.
    assert "my order is late" not in stack.channel.texts("c1")
