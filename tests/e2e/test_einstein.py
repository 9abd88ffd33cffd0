"""End to end: the real Runtime, the Einstein client and the Einstein simulator over loopback HTTP,
an in-memory agent backend. Every Einstein exchange is validated against the OpenAPI spec (the
``einstein`` fixture checks them when the test ends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from handoff_adapters.einstein.simulator import BILLING_BOT_ID, DEFAULT_QUEUE_ID
from handoff_core import State
from handoff_core import events as ev
from handoff_core.runtime import MemoryStore, Runtime
from tests.adapters.einstein.conftest import Env, einstein_env
from tests.fakes import RecordingChannel, ScriptedAgents

pytestmark = pytest.mark.anyio

MENU = "1. Order status\n2. Billing question\n3. Talk to a person"


@pytest.fixture
async def einstein() -> AsyncIterator[Env]:
    async with einstein_env() as env:
        yield env


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Effects after the last delivery (the transfer report, the DELETE) finish a bit later."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - polls a simulator's plain state
            await anyio.sleep(0.01)


async def test_escalate_agent_joins_transfer_succeeded_session_deleted(einstein: Env) -> None:
    agents, channel = ScriptedAgents(auto_join="Ada"), RecordingChannel()
    runtime = Runtime(
        bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
    )
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        assert channel.texts("c1")[-1] == MENU
        await runtime.user_said("c1", "3")  # "Talk to a person", answered by number
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.AGENT_CONNECTED
        (opened,) = agents.opened
        assert opened.context.targets == (
            ev.EscalationTarget(kind="queue", value=DEFAULT_QUEUE_ID),
        )
        assert opened.context.variables["OrderNumber"] == "A-1001"
        (session,) = einstein.simulator.sessions.values()
        await wait_until(lambda: session.ended is not None)
        assert conversation.escalation is not None
        escalate_id = conversation.escalation.message_id
        assert escalate_id is not None
        assert einstein.simulator.reports == [(session.id, "transferSucceeded", escalate_id, None)]
        assert session.ended == "Transfer"
        # The ended session's cursor comes back as the report's result, fed in after the DELETE.
        with anyio.fail_after(5):
            while True:
                conversation = await runtime.get("c1")
                assert conversation is not None
                assert conversation.bot_cursor is not None
                if conversation.bot_cursor["session"] is None:
                    break
                await anyio.sleep(0.01)
        await runtime.user_said("c1", "my parcel is late")
        assert agents.sent == [("c1#1", "my parcel is late")]
        assert session.received[-1] == {"type": "end", "reason": "Transfer"}
    agents.close_all()
    texts = channel.texts("c1")
    assert "One moment, I'm transferring you to an agent." in texts


async def test_no_agent_available_reports_transfer_failed_and_the_bot_answers(
    einstein: Env,
) -> None:
    agents = ScriptedAgents(reject=ev.RejectReason.NO_AGENT_AVAILABLE)
    channel = RecordingChannel()
    runtime = Runtime(
        bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
    )
    reply = (
        "Sorry, nobody could take the chat (NoAgentAvailable). I'm still here: how else can I help?"
    )
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        await runtime.user_said("c1", "please transfer me")
        await channel.wait_for("c1", lambda texts, keys: reply in texts)
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.TRANSFER_FAILED
        (session,) = einstein.simulator.sessions.values()
        assert session.ended is None  # the bot keeps the conversation
        assert conversation.escalation is not None
        assert einstein.simulator.reports == [
            (session.id, "transferFailed", conversation.escalation.message_id, "NoAgentAvailable")
        ]
        await runtime.user_said("c1", "1")
        assert channel.texts("c1")[-3] == "Your order A-1001 ships today."
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.BOT
    agents.close_all()


async def test_bot_to_bot_transfer_then_escalation_from_the_second_bot(einstein: Env) -> None:
    agents, channel = ScriptedAgents(auto_join="Grace"), RecordingChannel()
    runtime = Runtime(
        bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
    )
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        await runtime.user_said("c1", "2")  # "Billing question" → the billing bot
        assert channel.texts("c1")[-1] == (
            "Hi, I'm Penny from billing. I see order A-1001 (USD 42.50)."
        )
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.bot == BILLING_BOT_ID
        billing = next(
            s for s in einstein.simulator.sessions.values() if s.bot_id == BILLING_BOT_ID
        )
        assert billing.referrers[0]["type"] == "Salesforce:Core:Bot:Id"
        assert billing.variables["VIP"]["value"] is True
        await runtime.user_said("c1", "transfer")
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        await wait_until(lambda: billing.ended is not None)
        assert billing.ended == "Transfer"
        sources = [s for s in einstein.simulator.sessions.values() if s.bot_id != BILLING_BOT_ID]
        assert [s.ended for s in sources] == ["Transfer"]
    agents.close_all()


async def test_a_failing_bot_apologises_then_escalates_with_reason_error(einstein: Env) -> None:
    agents, channel = ScriptedAgents(auto_join="Ada"), RecordingChannel()
    runtime = Runtime(bot=einstein.client(max_attempts=2), agents=agents, channel=channel)
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        einstein.simulator.fail(503, count=6, retry_after=0)
        await runtime.user_said("c1", "one")
        await runtime.user_said("c1", "two")
        assert channel.keys("c1").count("botErrorMessage") == 2
        await runtime.user_said("c1", "three")
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        (opened,) = agents.opened
        assert opened.context.reason is ev.EscalationReason.ERROR
        # The bot never asked for this transfer: its session is ended, not told about it.
        (session,) = einstein.simulator.sessions.values()
        await wait_until(lambda: session.ended is not None)
        assert session.ended == "Transfer"
        assert einstein.simulator.reports == []
    agents.close_all()


async def test_user_asking_for_an_agent_ends_the_bot_session_on_success(einstein: Env) -> None:
    agents, channel = ScriptedAgents(auto_join="Ada"), RecordingChannel()
    runtime = Runtime(bot=einstein.bot, agents=agents, channel=channel)
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        await runtime.user_said("c1", "agent")  # the core's own escalation phrase
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        (session,) = einstein.simulator.sessions.values()
        await wait_until(lambda: session.ended is not None)
        assert session.ended == "Transfer"
        assert einstein.simulator.reports == []
    agents.close_all()


async def test_bot_remembers_the_variables_after_the_agent_chat(einstein: Env) -> None:
    """Astro → Penny (bot transfer) → agent → the agent ends → Penny's new session still knows the
    order: its init carries the conversation's variables, typed."""
    agents, channel = ScriptedAgents(auto_join="Ada"), RecordingChannel()
    runtime = Runtime(
        bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
    )
    greeting = "Hi, I'm Penny from billing. I see order A-1001 (USD 42.50)."
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        await runtime.user_said("c1", "2")  # "Billing question" → Penny
        assert channel.texts("c1")[-1] == greeting
        await runtime.user_said("c1", "transfer")
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        first = next(s for s in einstein.simulator.sessions.values() if s.bot_id == BILLING_BOT_ID)
        await wait_until(lambda: first.ended is not None)
        assert first.ended == "Transfer"
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.agent_session is not None
        agents.push(conversation.agent_session, ev.AgentEnded)
        await channel.wait_for("c1", lambda texts, keys: "conversationClosedMessage" in keys)
        await runtime.user_said("c1", "hello again")
        assert channel.texts("c1")[-1] == greeting
        assert channel.texts("c1").count(greeting) == 2
        penny = [s for s in einstein.simulator.sessions.values() if s.bot_id == BILLING_BOT_ID]
        assert len(penny) == 2
        again = penny[-1]
        assert again.ended is None
        assert again.received == [{"type": "init", "text": "hello again"}]
        assert again.referrers == []  # a restart, not a bot-to-bot transfer
        assert again.variables["OrderTotal"] == {
            "name": "OrderTotal",
            "type": "money",
            "value": "USD 42.50",
        }
        assert again.variables["VIP"] == {"name": "VIP", "type": "boolean", "value": True}
        conversation = await runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.BOT
        assert conversation.bot_cursor is not None
        assert conversation.bot_cursor["session"] == again.id
    agents.close_all()
