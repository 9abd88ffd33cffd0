"""Shared set-up for the MIAW tests: the simulator on real loopback HTTP, the backend, a runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs

from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawSimulator, SimConversation
from handoff_core import State
from handoff_core.runtime import MemoryStore, Runtime
from tests.fakes import RecordingChannel, RuleBot

FAST = {"reconnect_delay": 0.01, "reconnect_max_delay": 0.05, "heartbeat_timeout": 5.0}


@attrs.define
class Stack:
    sim: MiawSimulator
    url: str
    backend: MiawBackend
    runtime: Runtime
    channel: RecordingChannel
    bot: RuleBot

    async def escalate(self, conversation_id: str = "c1") -> SimConversation:
        """The user asks for an agent; returns the simulated MIAW conversation once created."""
        await self.runtime.user_said(conversation_id, "agent")
        miaw_id = await self.miaw_id(conversation_id)
        with anyio.fail_after(5):
            await self.sim.wait_for(lambda sim: miaw_id in sim.conversations)
        return self.sim.conversation(miaw_id)

    async def miaw_id(self, conversation_id: str) -> str:
        """The MIAW conversation id, from the cursor the core stored."""
        with anyio.fail_after(5):
            while True:
                conversation = await self.runtime.get(conversation_id)
                cursor = conversation.agent_cursor if conversation else None
                if cursor and isinstance(cursor.get("conversation_id"), str):
                    return str(cursor["conversation_id"])
                await anyio.sleep(0.01)

    async def state(self, conversation_id: str = "c1") -> State:
        conversation = await self.runtime.get(conversation_id)
        assert conversation is not None
        return conversation.state

    async def wait_state(self, state: State, conversation_id: str = "c1") -> None:
        with anyio.fail_after(5):
            # The store has no change notification: poll (cheap, in memory).
            while await self.state(conversation_id) is not state:  # noqa: ASYNC110
                await anyio.sleep(0.01)

    async def wait_text(self, text: str, conversation_id: str = "c1") -> None:
        await self.channel.wait_for(conversation_id, lambda texts, keys: text in texts)

    async def wait_key(self, key: str, conversation_id: str = "c1") -> None:
        await self.channel.wait_for(conversation_id, lambda texts, keys: key in keys)


@asynccontextmanager
async def miaw_stack(
    sim: MiawSimulator | None = None, **backend_options: Any
) -> AsyncIterator[Stack]:
    sim = sim or MiawSimulator(auto_join="Jane Agent")
    async with serve(sim.app) as url:
        options = {**FAST, **backend_options}
        async with MiawBackend(url, sim.org_id, sim.developer_name, **options) as backend:
            channel, bot = RecordingChannel(), RuleBot()
            runtime = Runtime(
                bot=bot, agents=backend, channel=channel, store=MemoryStore(serialize=True)
            )
            async with runtime.running():
                yield Stack(sim, url, backend, runtime, channel, bot)
