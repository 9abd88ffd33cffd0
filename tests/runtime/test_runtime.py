"""The runtime with in-memory fake ports, on asyncio and trio."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation, handle
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.runtime import MemoryStore, Runtime
from tests.fakes import RecordingChannel, RuleBot, ScriptedAgents

pytestmark = pytest.mark.anyio


def make(
    agents: ScriptedAgents | None = None,
    policy: Policy | None = None,
    store: MemoryStore | None = None,
) -> tuple[Runtime, RuleBot, ScriptedAgents, RecordingChannel]:
    bot, channel = RuleBot(), RecordingChannel()
    agents = agents or ScriptedAgents()
    runtime = Runtime(
        bot=bot,
        agents=agents,
        channel=channel,
        store=store if store is not None else MemoryStore(serialize=True),
        policy=policy or Policy(),
    )
    return runtime, bot, agents, channel


async def state_of(runtime: Runtime, cid: str) -> State:
    conv = await runtime.get(cid)
    assert conv is not None
    return conv.state


async def wait_state(runtime: Runtime, cid: str, state: State, limit: float = 5) -> None:
    with anyio.fail_after(limit):
        # Polling the store is the point: the state is what an observer of the store sees.
        while await state_of(runtime, cid) is not state:  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_messages_said_while_queued_reach_the_agent_in_order() -> None:
    runtime, bot, agents, channel = make(ScriptedAgents(auto_join=None))
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.QUEUED)
        for text in ("one", "two", "three"):
            await runtime.user_said("c1", text)
        assert agents.sent == []
        assert "You are number 1 in the queue." in channel.texts("c1")
        agents.push("c1#1", ev.AgentJoined, agent_name="Ada")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        assert agents.sent == [("c1#1", "one"), ("c1#1", "two"), ("c1#1", "three")]
        assert bot.reports == [("c1", fx.TransferOutcome.SUCCEEDED)]
        texts = channel.texts("c1")
        assert "Ada has joined the chat." in texts
        assert any("endagentchat" in text for text in texts)
        agents.push("c1#1", ev.AgentTyping, typing=True)
        agents.push("c1#1", ev.AgentTransferred, agent_name="Grace")
        agents.push("c1#1", ev.AgentMessage, text="Grace here")
        await channel.wait_for("c1", lambda texts, keys: "Grace here" in texts)
        assert channel.typing_shown == [("c1", True)]
        assert await state_of(runtime, "c1") is State.AGENT_CONNECTED
        await runtime.user_typing("c1", True)
        assert agents.typing_seen == [("c1#1", True)]
        agents.push("c1#1", ev.AgentEnded)
        await wait_state(runtime, "c1", State.BOT)
        await runtime.user_said("c1", "back to you, bot")
        assert bot.received[-1] == ("c1", "back to you, bot")
    agents.close_all()


async def test_no_agent_available_gives_the_conversation_back_to_the_bot() -> None:
    runtime, bot, agents, channel = make(ScriptedAgents(reject=ev.RejectReason.NO_AGENT_AVAILABLE))
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await runtime.user_said("c1", "hello?")
        await wait_state(runtime, "c1", State.TRANSFER_FAILED)
        await channel.wait_for("c1", lambda t, k: "The transfer failed; I'm back." in t)
        assert bot.reports == [("c1", fx.TransferOutcome.NO_AGENT_AVAILABLE)]
        assert "noAgentAvailableMessage" in channel.keys("c1")
        # The message said while waiting was not lost: the bot got it.
        assert ("c1", "hello?") in bot.received or agents.sent == []
        await runtime.user_said("c1", "ok")
        assert await state_of(runtime, "c1") is State.BOT
        # And the user can escalate again later in the same conversation.
        agents.reject = None
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        conv = await runtime.get("c1")
        assert conv is not None
        assert conv.agent_session == "c1#2"
        assert bot.reports[-1] == ("c1", fx.TransferOutcome.SUCCEEDED)
    agents.close_all()


async def test_availability_check_short_circuits_the_transfer() -> None:
    runtime, bot, agents, _channel = make(
        ScriptedAgents(available=False), Policy(check_availability=True)
    )
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.TRANSFER_FAILED)
        assert agents.opened == []
        assert bot.reports == [("c1", fx.TransferOutcome.NO_AGENT_AVAILABLE)]
    agents.close_all()


async def test_bot_escalation_carries_context_to_the_backend() -> None:
    runtime, _bot, agents, channel = make()
    async with runtime.running():
        await runtime.start("c1", language="fr-FR", user_name="Jon", prechat={"Email": "j@x.io"})
        await runtime.user_said("c1", "hi")
        await runtime.user_said("c1", "escalate me")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        context = agents.opened[0].context
        assert context.language == "fr"
        assert context.user_name == "Jon"
        assert context.prechat == {"Email": "j@x.io"}
        assert context.variables == {"order": "A-1"}
        assert context.targets == (ev.EscalationTarget(kind="queue", value="support"),)
        assert [e.text for e in context.transcript][:2] == ["hi", "bot: hi"]
        # System messages in the conversation's language.
        assert "Veuillez patienter" in " ".join(channel.texts("c1")) or any(
            key == "lookingForAgentMessage" for key in channel.keys("c1")
        )
        delivery = next(d for _, d in channel.deliveries if d.message_key)
        assert delivery.language == "fr"
    agents.close_all()


async def test_failing_ports_become_events_not_crashes() -> None:
    runtime, bot, agents, channel = make()
    async with runtime.running():
        agents.fail_open = True
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.TRANSFER_FAILED)
        assert bot.reports == [("c1", fx.TransferOutcome.ERROR)]

        bot.fail = True
        await runtime.user_said("c2", "hello")
        assert "botErrorMessage" in channel.keys("c2")

        bot.fail = False
        agents.fail_open = False
        await runtime.user_said("c3", "agent")
        await wait_state(runtime, "c3", State.AGENT_CONNECTED)
        agents.fail_send = True
        await runtime.user_said("c3", "are you there?")
        await wait_state(runtime, "c3", State.BOT)
        assert "agentConnectionLostMessage" in channel.keys("c3")
        assert runtime.stats["port_errors"] >= 3
    agents.close_all()


async def test_agent_stream_ending_early_is_a_lost_session() -> None:
    runtime, _bot, agents, channel = make()
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        agents.close_all()  # the stream ends without an end event
        await wait_state(runtime, "c1", State.BOT)
        assert "agentConnectionLostMessage" in channel.keys("c1")


async def test_queue_timeout_fires() -> None:
    runtime, _bot, agents, channel = make(
        ScriptedAgents(auto_join=None), Policy(queue_timeout=0.05)
    )
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.TRANSFER_FAILED)
        assert "queueTimeoutMessage" in channel.keys("c1")
        assert agents.closed == [("c1#1", fx.CloseReason.TRANSFER_FAILED)]
        assert runtime.pending_timers == 0
    agents.close_all()


async def test_idle_timeout_ends_a_quiet_agent_chat() -> None:
    runtime, _bot, agents, channel = make(policy=Policy(idle_timeout=0.1))
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        await anyio.sleep(0.06)
        await runtime.user_said("c1", "still here")  # pushes the deadline out
        await anyio.sleep(0.06)
        assert await state_of(runtime, "c1") is State.AGENT_CONNECTED
        await wait_state(runtime, "c1", State.USER_ENDED)
        assert "idleTimeoutMessage" in channel.keys("c1")
        assert agents.closed == [("c1#1", fx.CloseReason.IDLE_TIMEOUT)]
    agents.close_all()


async def test_user_ends_with_the_keyword_while_queued() -> None:
    runtime, bot, agents, _channel = make(ScriptedAgents(auto_join=None))
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.QUEUED)
        await runtime.user_said("c1", "never mind")
        await runtime.user_said("c1", "EndAgentChat")
        assert await state_of(runtime, "c1") is State.USER_ENDED
        assert agents.closed == [("c1#1", fx.CloseReason.USER_ENDED)]
        assert bot.reports == [("c1", fx.TransferOutcome.ERROR)]
        # The backend gets the session's cursor even though the record has forgotten it.
        assert agents.closed_with == [{"n": 1}]
        assert ("c1", "never mind") in bot.received
    agents.close_all()


async def test_bot_to_bot_transfer_carries_variables() -> None:
    runtime, bot, agents, channel = make()
    async with runtime.running():
        await runtime.feed(
            "c1", ev.BotTransferRequested(at=1, target_bot="billing", variables={"plan": "pro"})
        )
        assert bot.sessions == [("c1", "billing", {"plan": "pro"})]
        assert "billing here" in channel.texts("c1")
        await runtime.user_said("c1", "hi")
        conv = await runtime.get("c1")
        assert conv is not None
        assert conv.bot == "billing"
    agents.close_all()


async def test_a_failed_bot_transfer_keeps_the_source_bot() -> None:
    runtime, bot, agents, channel = make()

    async def refuse(conversation: Conversation, request: fx.StartBotSession) -> list[ev.BotEvent]:
        raise ConnectionError("target bot unreachable")

    bot.start_session = refuse  # type: ignore[method-assign]
    async with runtime.running():
        await runtime.start("c1", bot="sales")
        conv = await runtime.feed(
            "c1", ev.BotTransferRequested(at=time.time(), target_bot="billing")
        )
        assert conv is not None
        assert conv.bot == "sales"
        assert "botErrorMessage" in channel.keys("c1")
        await runtime.user_said("c1", "hi")
        assert bot.received[-1] == ("c1", "hi")
    agents.close_all()


async def test_an_illegal_event_is_refused_and_nothing_else_is_affected() -> None:
    runtime, _bot, agents, channel = make()
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        before = await runtime.get("c1")
        after = await runtime.feed("c1", ev.BotTransferRequested(at=2, target_bot="x"))
        assert after == before
        assert runtime.stats["rejected"] == 1
        await runtime.user_said("c2", "hello")
        assert channel.texts("c2") == ["bot: hello"]
    agents.close_all()


class OverlapDetectingChannel(RecordingChannel):
    """Fails the test if two deliveries for one conversation ever run at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.busy: set[str] = set()
        self.overlaps = 0

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if conversation.id in self.busy:
            self.overlaps += 1
        self.busy.add(conversation.id)
        await anyio.lowlevel.checkpoint()
        await super().deliver(conversation, delivery)
        self.busy.discard(conversation.id)


async def test_many_conversations_at_once_each_serialized() -> None:
    channel = OverlapDetectingChannel()
    agents = ScriptedAgents()
    runtime = Runtime(bot=RuleBot(), agents=agents, channel=channel)
    async with runtime.running():

        async def converse(n: int) -> None:
            cid = f"c{n}"
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(runtime.user_said, cid, f"m{i}")
            await runtime.user_said(cid, "agent")

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(converse, n)
        for n in range(200):
            await wait_state(runtime, f"c{n}", State.AGENT_CONNECTED, limit=20)
            assert agents.sent == [] or all(s != f"c{n}#1" for s, _ in agents.sent)
            assert len([t for t in channel.texts(f"c{n}") if t.startswith("bot: ")]) == 5
    assert channel.overlaps == 0
    agents.close_all()


async def test_a_step_interrupted_by_a_crash_is_finished_once_on_resume() -> None:
    store = MemoryStore(serialize=True)
    policy = Policy()
    # A previous process handled "agent" and saved the step, then died before any effect ran.
    conv = Conversation.new("c1")
    step = handle(conv, ev.UserMessage(at=time.time(), text="agent"), policy)
    await store.save(step.conversation, expected_step=None)
    # Pretend the first effect (the "please wait" message) was performed and marked done.
    await store.mark_done("c1", [step.effects[0].key])

    runtime, _bot, agents, channel = make(store=store)
    async with runtime.running():
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        assert len(agents.opened) == 1
        assert "lookingForAgentMessage" not in channel.keys("c1")  # not repeated
        assert runtime.stats["resumed_outboxes"] == 1
        stored = await store.load("c1")
        assert stored is not None
        assert stored.outbox == ()
    agents.close_all()


async def test_resume_reattaches_to_an_open_agent_session() -> None:
    store = MemoryStore(serialize=True)
    agents = ScriptedAgents(auto_join=None)
    first, _, _, _ = make(agents, store=store)
    async with first.running():
        await first.user_said("c1", "agent")
        await wait_state(first, "c1", State.QUEUED)
    # A new process (same store, same backend service) picks the conversation up.
    second, _bot, _, channel = make(agents, store=store)
    async with second.running():
        assert second.open_sessions == 1
        agents.push("c1#1", ev.AgentJoined, agent_name="Ada")
        await wait_state(second, "c1", State.AGENT_CONNECTED)
        assert "Ada has joined the chat." in channel.texts("c1")
    agents.close_all()


class ListBot(RuleBot):
    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=time.time(), text="?", not_understood=True)]


async def test_consecutive_not_understood_escalates() -> None:
    agents = ScriptedAgents()
    runtime = Runtime(
        bot=ListBot(),
        agents=agents,
        channel=RecordingChannel(),
        policy=Policy(max_not_understood=2),
    )
    async with runtime.running():
        await runtime.user_said("c1", "blah")
        assert await state_of(runtime, "c1") is State.BOT
        await runtime.user_said("c1", "blah blah")
        await wait_state(runtime, "c1", State.AGENT_CONNECTED)
        assert agents.opened[0].context.reason is ev.EscalationReason.NOT_UNDERSTOOD
    agents.close_all()
