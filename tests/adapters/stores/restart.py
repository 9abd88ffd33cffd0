"""One scenario every persistent store must survive, through the Runtime and the MIAW simulator."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio

from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_core import State
from handoff_core.ports import SessionStore
from handoff_core.runtime import Runtime
from tests.adapters.miaw.helpers import FAST
from tests.fakes import RecordingChannel, RuleBot

#: Opens a NEW store instance on the same underlying storage each time it is called.
StoreOpener = Callable[[], AbstractAsyncContextManager[SessionStore]]


async def check_restart_resumes_a_miaw_chat(open_store: StoreOpener) -> None:
    """Runtime + store stop mid-chat; a NEW runtime + NEW store on the same storage go on: the agent
    message sent while down, and every message after, arrive exactly once each way."""
    sim = MiawSimulator(auto_join="Jane Agent")
    async with serve(sim.app) as url:

        def backend() -> MiawBackend:
            return MiawBackend(url, sim.org_id, sim.developer_name, **FAST)

        first_channel = RecordingChannel()
        async with open_store() as store, backend() as miaw:
            runtime = Runtime(
                bot=RuleBot(),
                agents=miaw,
                channel=first_channel,
                store=store,
                instance_id="replica-1",
            )
            async with runtime.running():
                await runtime.user_said("c1", "agent")
                await first_channel.wait_for("c1", lambda texts, _: any("Jane" in t for t in texts))
                stored = await store.load("c1")
                assert stored is not None
                assert stored.agent_cursor is not None
                miaw_id = str(stored.agent_cursor["conversation_id"])
                sim.say(miaw_id, "before the restart")
                await first_channel.wait_for("c1", lambda texts, _: "before the restart" in texts)
                await runtime.user_said("c1", "first question")
                with anyio.fail_after(5):
                    await sim.wait_for(
                        lambda s: s.conversation(miaw_id).user_messages == ["first question"]
                    )
        # Down: nothing runs, the agent goes on talking.
        sim.say(miaw_id, "while you were away")

        second_channel = RecordingChannel()
        async with open_store() as store, backend() as miaw:
            resumed = await store.load("c1")
            assert resumed is not None
            assert resumed.state is State.AGENT_CONNECTED
            runtime = Runtime(
                bot=RuleBot(),
                agents=miaw,
                channel=second_channel,
                store=store,
                instance_id="replica-1",
            )
            async with runtime.running():
                await second_channel.wait_for("c1", lambda texts, _: "while you were away" in texts)
                sim.say(miaw_id, "after the restart")
                await second_channel.wait_for("c1", lambda texts, _: "after the restart" in texts)
                await runtime.user_said("c1", "second question")
                with anyio.fail_after(5):
                    await sim.wait_for(lambda s: len(s.conversation(miaw_id).user_messages) >= 2)
                await anyio.sleep(0.2)  # let a duplicate, if any, surface
                assert runtime.open_sessions == 1
    agent_before = [t for t in first_channel.texts("c1") if "restart" in t or "away" in t]
    assert agent_before == ["before the restart"]
    assert second_channel.texts("c1") == ["while you were away", "after the restart"]
    assert sim.conversation(miaw_id).user_messages == ["first question", "second question"]
