"""End to end over real loopback HTTP: Einstein simulator escalates → Live Agent simulator →
``transferSucceeded`` → the bot session is deleted; and the failure path (no agent available →
``transferFailed``, the bot answers). Every Einstein exchange is validated against the OpenAPI
spec when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.liveagent.client import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.liveagent.simulator import Simulator, SimulatorConfig
from handoff_core import State
from handoff_core.runtime import MemoryStore, Runtime
from tests.adapters.einstein.conftest import Env, einstein_env
from tests.fakes import RecordingChannel

pytestmark = pytest.mark.anyio

FAILED_REPLY = (
    "Sorry, nobody could take the chat (NoAgentAvailable). I'm still here: how else can I help?"
)


@pytest.fixture
async def einstein() -> AsyncIterator[Env]:
    async with einstein_env() as env:
        yield env


async def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - polls the simulators' plain state
            await anyio.sleep(0.01)


def live_agent(url: str) -> LiveAgentBackend:
    config = LiveAgentConfig(
        endpoint=url,
        organization_id="00DSIM0000000001AA",
        deployment_id="572SIM000000001",
        button_id="573SIM000000001",
        backoff=0.01,
    )
    return LiveAgentBackend(config)


async def test_escalate_to_live_agent_transfer_succeeded_session_deleted(einstein: Env) -> None:
    simulator = Simulator(SimulatorConfig(agent_delay=0.05, client_poll_timeout=5))
    channel = RecordingChannel()
    async with serve(simulator.app) as url, live_agent(url) as agents:
        runtime = Runtime(
            bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
        )
        async with runtime.running():
            await runtime.user_said("c1", "hello")
            await runtime.user_said("c1", "I want a transfer")
            await channel.wait_for("c1", lambda texts, keys: "endChatFromUserInstruction" in keys)
            (bot_session,) = einstein.simulator.sessions.values()
            await wait_until(lambda: bot_session.ended is not None)
            conversation = await runtime.get("c1")
            assert conversation is not None
            assert conversation.state is State.AGENT_CONNECTED
            assert conversation.escalation is not None
            assert einstein.simulator.reports == [
                (bot_session.id, "transferSucceeded", conversation.escalation.message_id, None)
            ]
            assert bot_session.ended == "Transfer"
            agent_session = simulator.session("latest")
            await channel.wait_for(
                "c1", lambda texts, keys: "Hi, I'm Ada. How can I help you?" in texts
            )
            await runtime.user_said("c1", "my order is late")
            await wait_until(lambda: "my order is late" in agent_session.texts)
            simulator.end(agent_session)
            await channel.wait_for("c1", lambda texts, keys: "conversationClosedMessage" in keys)
            # Back with the bot: a new bot session, since the old one was handed over.
            await runtime.user_said("c1", "hello again")
            assert channel.texts("c1")[-1] == (
                "1. Order status\n2. Billing question\n3. Talk to a person"
            )
            assert len(einstein.simulator.sessions) == 2


async def test_no_agent_available_reports_transfer_failed(einstein: Env) -> None:
    simulator = Simulator(SimulatorConfig(default_available=False, client_poll_timeout=5))
    channel = RecordingChannel()
    async with serve(simulator.app) as url, live_agent(url) as agents:
        runtime = Runtime(
            bot=einstein.bot, agents=agents, channel=channel, store=MemoryStore(serialize=True)
        )
        async with runtime.running():
            await runtime.user_said("c1", "hello")
            await runtime.user_said("c1", "3")
            await channel.wait_for("c1", lambda texts, keys: FAILED_REPLY in texts)
            conversation = await runtime.get("c1")
            assert conversation is not None
            assert conversation.state is State.TRANSFER_FAILED
            assert "noAgentAvailableMessage" in channel.keys("c1")
            (bot_session,) = einstein.simulator.sessions.values()
            assert conversation.escalation is not None
            assert einstein.simulator.reports == [
                (
                    bot_session.id,
                    "transferFailed",
                    conversation.escalation.message_id,
                    "NoAgentAvailable",
                )
            ]
            assert bot_session.ended is None
            assert bot_session.received[-1]["description"].startswith("Live Agent refused")
            await runtime.user_said("c1", "1")
            assert "Your order A-1001 ships today." in channel.texts("c1")
