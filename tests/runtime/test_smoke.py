from __future__ import annotations

import pytest

from handoff_core import State
from handoff_core.runtime import MemoryStore, Runtime
from tests.fakes import RecordingChannel, RuleBot, ScriptedAgents

pytestmark = pytest.mark.anyio


async def test_user_gets_agent_and_ends() -> None:
    bot, agents, channel = RuleBot(), ScriptedAgents(), RecordingChannel()
    runtime = Runtime(bot=bot, agents=agents, channel=channel, store=MemoryStore(serialize=True))
    async with runtime.running():
        await runtime.user_said("c1", "hello")
        await runtime.user_said("c1", "agent")
        await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
        conv = await runtime.get("c1")
        assert conv is not None
        assert conv.state is State.AGENT_CONNECTED
        await runtime.user_said("c1", "my order is late")
        assert agents.sent == [("c1#1", "my order is late")]
        agents.push("c1#1", __import__("handoff_core").AgentMessage, text="Let me check")
        await channel.wait_for("c1", lambda texts, keys: "Let me check" in texts)
        conv = await runtime.user_said("c1", "endagentchat")
        assert conv is not None
        assert conv.state is State.USER_ENDED
        assert agents.closed[0][0] == "c1#1"
        conv = await runtime.user_said("c1", "thanks")
        assert conv is not None
        assert conv.state is State.BOT
    agents.close_all()
    assert channel.texts("c1")[0] == "bot: hello"
