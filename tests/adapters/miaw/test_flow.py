"""The MIAW backend driven by the runtime, over real loopback HTTP against the simulator."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest

from handoff_adapters.miaw.simulator import MiawSimulator, SimConversation
from handoff_core import State
from handoff_core import effects as fx
from handoff_core.conversation import Conversation
from tests.adapters.miaw.helpers import miaw_stack

pytestmark = pytest.mark.anyio


async def test_agent_joins_talks_types_and_ends() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        assert await stack.state() is State.AGENT_CONNECTED
        await stack.runtime.user_typing("c1", True)
        await stack.runtime.user_said("c1", "my order is late")
        with anyio.fail_after(5):
            await stack.sim.wait_for(lambda _: miaw.user_messages == ["my order is late"])
        assert miaw.user_typing == [True]
        stack.sim.typing(miaw.id, True)
        stack.sim.say(miaw.id, "Let me check")
        await stack.wait_text("Let me check")
        assert ("c1", True) in stack.channel.typing_shown
        stack.sim.end(miaw.id)
        await stack.wait_state(State.BOT)
    # The user's own message came back on the stream (the echo) and was not shown to them.
    assert "my order is late" not in stack.channel.texts("c1")
    assert stack.channel.texts("c1").count("Let me check") == 1


async def test_prechat_becomes_routing_attributes() -> None:
    async with miaw_stack() as stack:
        await stack.runtime.start(
            "c1", language="pt", prechat={"_firstName": "Ada", "OrderNumber": "A-1"}
        )
        miaw = await stack.escalate()
    assert miaw.routing_attributes == {"_firstName": "Ada", "OrderNumber": "A-1"}
    assert miaw.language == "pt"
    assert miaw.id == miaw.id.lower()


async def test_queue_position_and_wait_time_reach_the_user() -> None:
    sim = MiawSimulator(queue_position=3, estimated_wait=120)
    async with miaw_stack(sim) as stack:
        miaw = await stack.escalate()
        await stack.wait_key("estimatedWaitMessage")
        conversation = await stack.runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.QUEUED
        assert conversation.queue_position == 3
        assert conversation.estimated_wait == 120
        sim.join(miaw.id, "Sam")
        await stack.wait_text("Sam has joined the chat.")


async def test_routing_failure_is_a_rejected_transfer() -> None:
    sim = MiawSimulator(routing_failure="No agents are available.")
    async with miaw_stack(sim) as stack:
        await stack.escalate()
        await stack.wait_state(State.TRANSFER_FAILED)
    assert stack.bot.reports == [("c1", fx.TransferOutcome.NO_AGENT_AVAILABLE)]


def _routing_payload(miaw: SimConversation) -> dict[str, Any]:
    payloads = [e["entryPayload"] for e in miaw.entries if e["entryType"] == "RoutingResult"]
    assert len(payloads) == 1
    payload: dict[str, Any] = payloads[0]
    return payload


@pytest.mark.parametrize("flat_wait", [False, True], ids=["nested", "flat"])
async def test_routing_failure_in_either_wait_shape_goes_back_to_the_bot(flat_wait: bool) -> None:
    sim = MiawSimulator(
        routing_failure="No agents are available.", estimated_wait=120, flat_wait=flat_wait
    )
    async with miaw_stack(sim) as stack:
        miaw = await stack.escalate()
        await stack.wait_state(State.TRANSFER_FAILED)
        await stack.runtime.user_said("c1", "anyone?")
        await stack.wait_text("bot: anyone?")
    sent = _routing_payload(miaw)
    assert sent["failureType"] == "RoutingError"
    if flat_wait:
        assert "estimatedWaitTime" not in sent
    else:
        assert sent["estimatedWaitTime"] == {
            "estimatedWaitTimeInSeconds": None,
            "isEWTRequested": True,
        }
    assert stack.bot.reports == [("c1", fx.TransferOutcome.NO_AGENT_AVAILABLE)]
    assert ("c1", "anyone?") in stack.bot.received
    assert miaw.user_messages == []  # the user's next words went to the bot, not to MIAW
    assert not any(k.startswith("skipped:") for k in stack.backend.stats)


@pytest.mark.parametrize("flat_wait", [False, True], ids=["nested", "flat"])
async def test_estimated_wait_in_either_shape_is_shown_to_the_user(flat_wait: bool) -> None:
    sim = MiawSimulator(queue_position=2, estimated_wait=300, flat_wait=flat_wait)
    async with miaw_stack(sim) as stack:
        miaw = await stack.escalate()
        await stack.wait_key("estimatedWaitMessage")
        conversation = await stack.runtime.get("c1")
        assert conversation is not None
        assert conversation.state is State.QUEUED
        assert conversation.estimated_wait == 300
    sent = _routing_payload(miaw)
    if flat_wait:
        assert sent["estimatedWaitTime"] == 300
    else:
        assert sent["estimatedWaitTime"] == {
            "estimatedWaitTimeInSeconds": 300,
            "isEWTRequested": True,
        }
        assert "isEWTAvailable" not in sent
    assert "You are number 2 in the queue. The estimated wait is about 5 min." in (
        stack.channel.texts("c1")
    )


async def test_transfer_to_another_agent_keeps_the_chat() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.transfer(miaw.id, "Second Agent")
        await stack.wait_text("You are being transferred to Second Agent.")
        stack.sim.say(miaw.id, "Hi, I'm the second agent")
        await stack.wait_text("Hi, I'm the second agent")
        assert await stack.state() is State.AGENT_CONNECTED
    assert stack.channel.keys("c1").count("agentTransferredMessage") == 1
    assert "Second Agent has joined the chat." not in stack.channel.texts("c1")


async def test_user_ending_the_chat_closes_the_conversation() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        await stack.runtime.user_said("c1", "endagentchat")
        assert await stack.state() is State.USER_ENDED
        with anyio.fail_after(5):
            await stack.sim.wait_for(lambda _: miaw.closed)
        assert stack.runtime.open_sessions == 0


async def test_a_retried_send_is_not_duplicated() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        conversation = await stack.runtime.get("c1")
        assert conversation is not None
        assert conversation.agent_session is not None
        effect = fx.ForwardToAgent(
            key="c1/99/0", session=conversation.agent_session, ordinal=7, text="once"
        )
        await stack.backend.send(conversation, effect)
        await stack.backend.send(conversation, effect)  # the step re-run after a crash
    assert miaw.user_messages == ["once"]
    assert miaw.duplicate_posts == 1


async def test_417_resends_the_same_message_in_a_new_session() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        miaw.session_active = False  # the messaging session ended on Salesforce's side
        await stack.runtime.user_said("c1", "are you there?")
        with anyio.fail_after(5):
            await stack.sim.wait_for(lambda _: miaw.user_messages == ["are you there?"])
    assert miaw.new_sessions == 2
    assert stack.sim.stats["rejected:417"] == 1
    assert stack.backend.stats["new_messaging_sessions"] == 1


async def test_429_waits_for_retry_after() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.fail_next("message", 429, retry_after=0.3)
        started = anyio.current_time()
        await stack.runtime.user_said("c1", "hello?")
        elapsed = anyio.current_time() - started
    assert miaw.user_messages == ["hello?"]
    assert elapsed >= 0.3
    assert stack.backend.stats["retried:429"] == 1


async def test_expired_guest_token_ends_the_session_visibly() -> None:
    async with miaw_stack() as stack:
        await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.expire_tokens()
        await stack.wait_key("agentConnectionLostMessage")
        assert await stack.state() is State.BOT


def _identity_jwt(subject: str) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': subject})}.c2ln"


async def test_expired_verified_token_is_renewed() -> None:
    async def identity(conversation: Conversation) -> str:
        return _identity_jwt(f"user-{conversation.id}")

    async with miaw_stack(identity_token=identity) as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.expire_tokens()
        stack.sim.say(miaw.id, "still with you")
        await stack.wait_text("still with you")
        await stack.runtime.user_said("c1", "great")
        with anyio.fail_after(5):
            await stack.sim.wait_for(lambda _: miaw.user_messages == ["great"])
        assert await stack.state() is State.AGENT_CONNECTED
    assert stack.backend.stats["tokens_renewed"] >= 1
    assert miaw.subject.endswith("uid:user-c1")


async def test_a_conversation_id_taken_by_another_identity_gets_its_own() -> None:
    """Two processes, same core conversation id (e.g. ``handoff connect`` run twice)."""
    async with miaw_stack() as first:
        taken = await first.escalate()
        async with miaw_stack(first.sim) as second:
            again = await second.escalate()
            await second.wait_text("Jane Agent has joined the chat.")
    assert again.id != taken.id
    assert again.subject != taken.subject
    assert second.backend.stats["conversation_id_conflicts"] == 1
