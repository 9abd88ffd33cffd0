"""A malformed Live Agent answer ends one conversation cleanly; the others carry on."""

from __future__ import annotations

import pytest

from handoff_adapters._serve import serve
from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.liveagent.simulator import (
    LiveAgentController,
    SimFault,
    Simulator,
    SimulatorConfig,
)
from handoff_core import State
from handoff_core.runtime import MemoryStore, Runtime
from tests.fakes import RecordingChannel, RuleBot

pytestmark = pytest.mark.anyio

BODIES = [
    ("<html>502 Bad Gateway</html>", "response body is not JSON"),
    (
        '{"messages": [{"type": "ChatMessage", "message": {"text": 7}}], "sequence": 9}',
        "ChatMessage $.text",
    ),
    ('{"messages": [], "sequence": "nine"}', "$.sequence"),
    (
        '{"messages": [{"type": "ChatMessage", "message": {"text": "' + "x" * 1_100_000 + '"}}]}',
        "too large",
    ),
]


@pytest.mark.parametrize(
    ("body", "reason"), BODIES, ids=["html", "wrong-type", "bad-sequence", "huge"]
)
async def test_garbage_from_the_server_ends_only_that_conversation(body: str, reason: str) -> None:
    simulator = Simulator(SimulatorConfig(agent_delay=None, greeting=None))
    controller = LiveAgentController(simulator)
    async with serve(simulator.app) as url:
        config = LiveAgentConfig(
            endpoint=url,
            organization_id="00D",
            deployment_id="572",
            button_id="573",
            backoff=0.01,
            message_gap=0,
        )
        async with LiveAgentBackend(config) as backend:
            channel = RecordingChannel()
            runtime = Runtime(
                bot=RuleBot(), agents=backend, channel=channel, store=MemoryStore(serialize=True)
            )
            async with runtime.running():
                sessions = {}
                for cid in ("victim", "bystander"):
                    await runtime.user_said(cid, "agent")
                    sessions[cid] = await controller.next_session()
                    await controller.join(sessions[cid], "Ada")
                    await channel.wait_for(cid, lambda t, k: "agentJoinedMessage" in k)
                await controller.inject(sessions["victim"], SimFault.GARBAGE, body=body)
                await controller.say(sessions["victim"], "this answer is mangled")
                await channel.wait_for("victim", lambda t, k: "agentConnectionLostMessage" in k)
                victim = await runtime.get("victim")
                assert victim is not None
                assert victim.state is State.BOT
                assert victim.audit[-1].cause.startswith("session lost: ")
                assert reason in victim.audit[-1].cause
                # The adapter ended the chat on the server rather than leave the agent waiting.
                await controller.wait(
                    lambda: simulator.session(sessions["victim"]).state == "ended"
                )
                # The other conversation is untouched.
                await controller.say(sessions["bystander"], "still here")
                await channel.wait_for("bystander", lambda t, k: "still here" in t)
                await runtime.user_said("bystander", "good")
                await controller.wait(
                    lambda: simulator.session(sessions["bystander"]).texts == ["good"]
                )
                bystander = await runtime.get("bystander")
                assert bystander is not None
                assert bystander.state is State.AGENT_CONNECTED
                await runtime.user_said("bystander", "endagentchat")
