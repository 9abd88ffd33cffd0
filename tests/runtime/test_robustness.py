"""The runtime keeps going when a store, the core or a timer misbehaves."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import attrs
import pytest

from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.ports import StaleConversation
from handoff_core.runtime import MemoryStore, Runtime
from tests.fakes import RecordingChannel, RuleBot, ScriptedAgents

pytestmark = pytest.mark.anyio


class FlakyStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__(serialize=True)
        self.stale_next = 0
        self.down = False

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        if self.down:
            raise ConnectionError("store down")
        if self.stale_next:
            self.stale_next -= 1
            # Another process got there first with the same step: ours is stale.
            raise StaleConversation("moved on")
        await super().save(conversation, expected_step=expected_step)


async def test_a_lost_save_race_is_retried_on_the_fresh_record() -> None:
    store = FlakyStore()
    channel = RecordingChannel()
    runtime = Runtime(bot=RuleBot(), agents=ScriptedAgents(), channel=channel, store=store)
    async with runtime.running():
        store.stale_next = 1
        conv = await runtime.user_said("c1", "hello")
        assert conv is not None
        assert conv.step == 2  # the message and the bot's reply, each applied once
        assert channel.texts("c1") == ["bot: hello"]
        assert runtime.stats["stale_retries"] == 1


async def test_a_store_outage_in_a_background_task_does_not_stop_the_runtime() -> None:
    store = FlakyStore()
    agents = ScriptedAgents(auto_join=None)
    channel = RecordingChannel()
    runtime = Runtime(bot=RuleBot(), agents=agents, channel=channel, store=store)
    async with runtime.running():
        await runtime.user_said("c1", "agent")
        store.down = True
        agents.push("c1#1", ev.AgentJoined, agent_name="Ada")  # its step cannot be saved
        with anyio.fail_after(5):
            while runtime.stats["background_errors"] == 0:  # noqa: ASYNC110 - a counter
                await anyio.sleep(0.01)
        with pytest.raises(ConnectionError):
            await runtime.user_said("c2", "hello")  # a direct caller is told
        store.down = False
        conv = await runtime.user_said("c2", "hello")
        assert conv is not None
        assert conv.state is State.BOT
    agents.close_all()


async def test_a_bug_in_the_core_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    import handoff_core.runtime as runtime_module

    real_handle = runtime_module.handle

    def broken(conversation: Conversation, event: ev.Event, policy: object) -> object:
        if isinstance(event, ev.UserMessage) and event.text == "boom":
            raise RuntimeError("bug")
        return real_handle(conversation, event, policy)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime_module, "handle", broken)
    channel = RecordingChannel()
    runtime = Runtime(bot=RuleBot(), agents=ScriptedAgents(), channel=channel)
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        before = await runtime.get("c1")
        assert await runtime.user_said("c1", "boom") == before
        assert runtime.stats["core_errors"] == 1
        await runtime.user_said("c1", "still works")
        assert channel.texts("c1") == ["bot: hello", "bot: still works"]


class SlowBot(RuleBot):
    """Yields while it answers, so two processes' steps interleave."""

    async def send(self, conversation: Conversation, message: object) -> list[ev.BotEvent]:
        await anyio.sleep(0.01)
        return list(await super().send(conversation, message))  # type: ignore[arg-type]


async def test_two_processes_receiving_the_same_retried_message_apply_it_once() -> None:
    store = MemoryStore(serialize=True)
    bots = [SlowBot(), SlowBot()]
    runtimes = [
        Runtime(bot=bot, agents=ScriptedAgents(), channel=RecordingChannel(), store=store)
        for bot in bots
    ]
    async with runtimes[0].running(), runtimes[1].running():
        await runtimes[0].user_said("c1", "first")  # the conversation exists in the store
        async with anyio.create_task_group() as tg:
            for runtime in runtimes:
                tg.start_soon(lambda r=runtime: r.user_said("c1", "hello", message_id="req-7"))
    heard = [text for bot in bots for _, text in bot.received]
    assert heard.count("hello") == 1
    # The second runtime either waited for the first one's step or lost the save race to it.
    assert sum(r.stats["lease_waits"] + r.stats["stale_retries"] for r in runtimes) >= 1
    assert sum(r.stats["resumed_outboxes"] for r in runtimes) == 0  # nobody did another's work
    assert sum(r.stats["dropped:duplicate"] for r in runtimes) == 1


async def test_an_outbox_left_by_a_dead_runtime_is_finished_after_its_lease() -> None:
    store = MemoryStore(serialize=True)
    conv = Conversation.new("c1")
    from handoff_core.conversation import handle

    step = handle(conv, ev.UserMessage(at=time.time(), text="hi"))
    # A runtime that has since died claimed the step for another 0.1 s.
    await store.save(
        attrs.evolve(step.conversation, lease_owner="dead", lease_until=time.time() + 0.1),
        expected_step=None,
    )
    bot = RuleBot()
    runtime = Runtime(bot=bot, agents=ScriptedAgents(), channel=RecordingChannel(), store=store)
    async with runtime.running():
        assert bot.received == []  # the lease is still live: resume leaves it alone
        conv_after = await runtime.user_said("c1", "second")
    assert [text for _, text in bot.received] == ["hi", "second"]
    assert runtime.stats["lease_waits"] >= 1
    assert runtime.stats["resumed_outboxes"] == 1
    assert conv_after is not None
    assert conv_after.outbox == ()


class YieldingStore(MemoryStore):
    """Yields to other tasks on every load, like a store across a network or a thread does."""

    async def load(self, conversation_id: str) -> Conversation | None:
        conversation = await super().load(conversation_id)
        # What was read may be stale by the time the caller sees it.
        await anyio.lowlevel.checkpoint()
        return conversation


async def test_two_runtimes_taking_over_a_dead_runtimes_step_perform_it_once() -> None:
    store = YieldingStore(serialize=True)
    from handoff_core.conversation import handle

    bots = [SlowBot(), SlowBot()]
    runtimes = [
        Runtime(bot=bot, agents=ScriptedAgents(), channel=RecordingChannel(), store=store)
        for bot in bots
    ]
    async with runtimes[0].running(), runtimes[1].running():
        # A third runtime saved this step and died; its lease has already expired.
        step = handle(Conversation.new("c1"), ev.UserMessage(at=time.time(), text="hi"))
        await store.save(
            attrs.evolve(step.conversation, lease_owner="dead", lease_until=time.time() - 1),
            expected_step=None,
        )
        async with anyio.create_task_group() as tg:
            for n, runtime in enumerate(runtimes):
                tg.start_soon(runtime.user_said, "c1", f"from {n}")
    heard = [text for bot in bots for _, text in bot.received]
    assert heard.count("hi") == 1
    assert sorted(t for t in heard if t != "hi") == ["from 0", "from 1"]
    assert sum(r.stats["resumed_outboxes"] for r in runtimes) == 1
