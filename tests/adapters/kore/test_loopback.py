"""Kore simulator → BotKit routes → runtime (fake agents) → back through sendUserMessageUrl.

Over real loopback HTTP on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from handoff_adapters._serve import serve
from handoff_adapters.kore import KoreApp, KoreApps, KoreBotKit, KoreWebhooks, conversation_id
from handoff_adapters.kore.simulator import KoreSimulator
from handoff_core import AgentEnded, AgentMessage, State
from handoff_core.runtime import MemoryStore, Runtime
from tests.adapters.kore.conftest import SECRET
from tests.fakes import ScriptedAgents

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def kore_stack(
    **simulator_options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, KoreSimulator, Runtime, ScriptedAgents]]:
    simulator = KoreSimulator(client_secret=SECRET, **simulator_options)
    apps = KoreApps({"*": KoreApp(client_id=simulator.client_id, client_secret=SECRET)})
    botkit = KoreBotKit(apps)
    agents = ScriptedAgents()
    runtime = Runtime(bot=botkit, agents=agents, channel=botkit, store=MemoryStore(serialize=True))
    webhooks = KoreWebhooks(runtime, botkit)
    app = Starlette(routes=webhooks.routes())
    try:
        async with (
            serve(app) as botkit_url,
            serve(simulator.app) as sim_url,
            httpx.AsyncClient(base_url=sim_url, timeout=10) as control,
        ):
            await control.post("/control/config", json={"botkit_url": botkit_url})
            async with runtime.running():
                yield control, simulator, runtime, agents
    finally:
        agents.close_all()
        await botkit.aclose()


async def read_until(
    control: httpx.AsyncClient, user: str, wanted: str, after: int = 0
) -> tuple[list[str], int]:
    texts: list[str] = []
    with anyio.fail_after(5):
        while not any(wanted in t for t in texts):
            page = (
                await control.get(
                    f"/control/users/{user}/messages", params={"after": after, "wait": 2}
                )
            ).json()
            texts += [m["text"] for m in page["messages"]]
            after = page["next"]
    return texts, after


async def test_bot_then_agent_then_back_to_bot() -> None:
    async with kore_stack(pre_chat={"City": "Hyderabad"}, end_keyword="“stopagent") as (
        control,
        simulator,
        runtime,
        agents,
    ):
        cid = conversation_id(simulator.bot_id, "u-1")
        answer = (await control.post("/control/users/u-1/messages", json={"text": "hi"})).json()
        assert answer["status"] == 200
        texts, seen = await read_until(control, "u-1", "Hello! I am the Kore demo bot.")

        await control.post("/control/users/u-1/messages", json={"text": "transfer me"})
        texts, seen = await read_until(control, "u-1", "stopagent", seen)
        assert any("Let me connect you" in t for t in texts)
        conversation = await runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.AGENT_CONNECTED
        assert conversation.prechat == {"City": "Hyderabad"}
        assert conversation.end_keyword == "stopagent"
        assert conversation.user_name == "Kore User"
        opened = agents.opened[0].context
        assert opened.variables["kore.email"] == "u-1@example.com"
        # startAgentSession is the step's last effect, after the messages read above.
        with anyio.fail_after(5):
            while not simulator.user("u-1").agent_mode:
                await simulator.user("u-1").changed.wait()

        # While the agent owns the chat, the user's words go to the agent, not the bot.
        bot_calls = sum(c["kind"] == "sendBotMessage" for c in simulator.calls)
        await control.post("/control/users/u-1/messages", json={"text": "my order is late"})
        assert agents.sent[-1] == (f"{cid}#1", "my order is late")
        assert sum(c["kind"] == "sendBotMessage" for c in simulator.calls) == bot_calls

        agents.push(f"{cid}#1", AgentMessage, text="Let me check that for you")
        texts, seen = await read_until(control, "u-1", "Let me check that for you", seen)

        agents.push(f"{cid}#1", AgentEnded)
        await read_until(control, "u-1", "The agent has ended the chat", seen)
        with anyio.fail_after(5):
            while simulator.user("u-1").agent_mode:
                await simulator.user("u-1").changed.wait()
        assert [c["kind"] for c in simulator.calls].count("clearAgentSession") == 1

        await control.post("/control/users/u-1/messages", json={"text": "hello"})
        conversation = await runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.BOT


async def test_user_ends_with_the_configured_keyword() -> None:
    async with kore_stack(end_keyword="stopagent") as (control, simulator, runtime, agents):
        cid = conversation_id(simulator.bot_id, "u-2")
        await control.post("/control/users/u-2/messages", json={"text": "transfer me"})
        await read_until(control, "u-2", "stopagent")
        await control.post("/control/users/u-2/messages", json={"text": "StopAgent"})
        conversation = await runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.USER_ENDED
        assert agents.closed[-1][0] == f"{cid}#1"
        assert not simulator.user("u-2").agent_mode
