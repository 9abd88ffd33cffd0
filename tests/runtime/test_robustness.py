"""The runtime keeps going when a store, the core or a timer misbehaves."""

from __future__ import annotations

import anyio
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
