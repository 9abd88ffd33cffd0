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

#: The routes serving each stack's runtime (for their counters).
WEBHOOKS: dict[Runtime, KoreWebhooks] = {}


@asynccontextmanager
async def kore_stack(
    *, extend_after: float | None = 240.0, **simulator_options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, KoreSimulator, Runtime, ScriptedAgents]]:
    simulator = KoreSimulator(client_secret=SECRET, **simulator_options)
    apps = KoreApps({"*": KoreApp(client_id=simulator.client_id, client_secret=SECRET)})
    botkit = KoreBotKit(apps, extend_after=extend_after)
    agents = ScriptedAgents()
    runtime = Runtime(bot=botkit, agents=agents, channel=botkit, store=MemoryStore(serialize=True))
    webhooks = KoreWebhooks(runtime, botkit)
    app = Starlette(routes=webhooks.routes())
    WEBHOOKS[runtime] = webhooks
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
        WEBHOOKS.pop(runtime, None)
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
        # The bot's answer comes as a webhook from the simulator's background task: let it land
        # before the servers stop (a request cut off at shutdown leaks its body stream).
        await read_until(control, "u-1", "Hello! I am the Kore demo bot.", seen)


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


async def transfer(control: httpx.AsyncClient, simulator: KoreSimulator, user: str) -> int:
    """Bring ``user`` to a connected agent; return how many lines the user has been shown."""
    await control.post(f"/control/users/{user}/messages", json={"text": "transfer me"})
    # The agent-joined step ends with the end-keyword hint (after startAgentSession).
    _, seen = await read_until(control, user, "to end the chat")
    assert simulator.user(user).agent_mode
    return seen


async def say(control: httpx.AsyncClient, user: str, text: str) -> str:
    """The user types ``text``; returns the request id of the webhook the platform sent."""
    answer = (await control.post(f"/control/users/{user}/messages", json={"text": text})).json()
    assert answer["status"] == 200, answer
    request_id: str = answer["requestId"]
    return request_id


def delivered_through(simulator: KoreSimulator, text: str) -> list[str]:
    """The request ids whose sendUserMessage URL carried ``text``."""
    return [
        c["requestId"]
        for c in simulator.calls
        if c["kind"] == "sendUserMessage" and c["message"] == text
    ]


async def test_agent_lines_go_out_through_the_users_latest_request() -> None:
    # rotate_requests: the platform refuses (410) every request of the user but the latest.
    async with kore_stack(rotate_requests=True) as (control, simulator, runtime, agents):
        cid = conversation_id(simulator.bot_id, "u-3")
        seen = await transfer(control, simulator, "u-3")
        for turn in range(3):
            request_id = await say(control, "u-3", f"question {turn}")
            assert agents.sent[-1] == (f"{cid}#1", f"question {turn}")
            agents.push(f"{cid}#1", AgentMessage, text=f"answer {turn}")
            _, seen = await read_until(control, "u-3", f"answer {turn}", seen)
            assert delivered_through(simulator, f"answer {turn}") == [request_id]
        conversation = await runtime.get(cid)
        assert conversation is not None
        assert conversation.channel_cursor is not None
        assert conversation.channel_cursor["kore.requestId"] == request_id
        assert simulator.refused == []


async def test_retried_user_message_is_acknowledged_and_applied_once() -> None:
    async with kore_stack() as (control, simulator, runtime, agents):
        cid = conversation_id(simulator.bot_id, "u-4")
        webhooks = WEBHOOKS[runtime]
        # With the bot: the retry is not forwarded to the bot a second time.
        request_id = await say(control, "u-4", "hello")
        retried = (await control.post(f"/control/webhooks/{request_id}/retry")).json()
        assert retried["status"] == 200
        assert retried["body"]["requestId"] == request_id  # BotKit echoes the request
        await read_until(control, "u-4", "Hello! I am the Kore demo bot.")
        forwarded = [c for c in simulator.calls if c["kind"] == "sendBotMessage"]
        assert [c["message"] for c in forwarded] == ["hello"]

        # With an agent: a retry, and two copies arriving at once, reach the agent once.
        await transfer(control, simulator, "u-4")
        request_id = await say(control, "u-4", "my parcel is late")
        assert (await simulator.retry(request_id)).status_code == 200
        twice = simulator.payload("u-4", "where is it?")
        statuses: list[int] = []

        async def send() -> None:
            statuses.append((await simulator.send_webhook("on_user_message", twice)).status_code)

        async with anyio.create_task_group() as group:
            group.start_soon(send)
            group.start_soon(send)
        assert statuses == [200, 200]
        assert [text for _, text in agents.sent] == ["my parcel is late", "where is it?"]
        assert webhooks.received["on_user_message", "duplicate"] == 3
        conversation = await runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.AGENT_CONNECTED


@pytest.mark.parametrize("extend_after", [0.15, None])
async def test_an_aging_request_is_extended_before_use(extend_after: float | None) -> None:
    # The platform expires a request id 0.6 s after it is issued or last extended.
    async with kore_stack(request_ttl=0.6, extend_after=extend_after) as (
        control,
        simulator,
        _runtime,
        agents,
    ):
        cid = conversation_id(simulator.bot_id, "u-5")
        seen = await transfer(control, simulator, "u-5")
        request_id = await say(control, "u-5", "still there?")
        for turn in range(2):
            await anyio.sleep(0.35)
            agents.push(f"{cid}#1", AgentMessage, text=f"one moment {turn}")
            if extend_after is None and turn == 1:
                break
            _, seen = await read_until(control, "u-5", f"one moment {turn}", seen)
        extended = [c["requestId"] for c in simulator.calls if c["kind"] == "extendcallid"]
        if extend_after is None:
            # Without extending, 0.7 s after its webhook the request no longer works.
            with anyio.fail_after(5):
                while not simulator.refused:
                    await simulator.user("u-5").changed.wait()
            assert extended == []
            assert simulator.refused[0]["requestId"] == request_id
            assert simulator.refused[0]["reason"] == "request expired"
        else:
            assert extended == [request_id, request_id]
            assert delivered_through(simulator, "one moment 1") == [request_id]
            assert simulator.refused == []


async def test_a_restarted_runtime_answers_through_the_stored_channel_cursor() -> None:
    simulator = KoreSimulator(client_secret=SECRET, rotate_requests=True)
    apps = KoreApps({"*": KoreApp(client_id=simulator.client_id, client_secret=SECRET)})
    store = MemoryStore(serialize=True)
    agents = ScriptedAgents()

    @asynccontextmanager
    async def process(control: httpx.AsyncClient) -> AsyncIterator[Runtime]:
        """One service process: its own BotKit client, runtime and server; the shared store."""
        botkit = KoreBotKit(apps)
        runtime = Runtime(bot=botkit, agents=agents, channel=botkit, store=store)
        app = Starlette(routes=KoreWebhooks(runtime, botkit).routes())
        try:
            async with serve(app) as botkit_url, runtime.running():
                await control.post("/control/config", json={"botkit_url": botkit_url})
                yield runtime
        finally:
            await botkit.aclose()

    cid = conversation_id(simulator.bot_id, "u-6")
    try:
        async with (
            serve(simulator.app) as sim_url,
            httpx.AsyncClient(base_url=sim_url, timeout=10) as control,
        ):
            async with process(control):
                seen = await transfer(control, simulator, "u-6")
                before = await say(control, "u-6", "before the restart")
            async with process(control) as runtime:
                # The agent answers while the new process follows the session.
                agents.push(f"{cid}#1", AgentMessage, text="answered after the restart")
                _, seen = await read_until(control, "u-6", "answered after the restart", seen)
                assert delivered_through(simulator, "answered after the restart") == [before]
                after = await say(control, "u-6", "after the restart")
                assert agents.sent[-1] == (f"{cid}#1", "after the restart")
                # The same request id again (a retry reaching the new process) is still dropped.
                assert (await simulator.retry(after)).status_code == 200
                assert [t for _, t in agents.sent].count("after the restart") == 1
                agents.push(f"{cid}#1", AgentMessage, text="and again")
                await read_until(control, "u-6", "and again", seen)
                assert delivered_through(simulator, "and again") == [after]
                conversation = await runtime.get(cid)
                assert conversation is not None
                assert conversation.state is State.AGENT_CONNECTED
            assert simulator.refused == []
    finally:
        agents.close_all()
