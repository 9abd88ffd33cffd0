"""Build conversations in each state, and one event per table row, by driving the core itself."""

from __future__ import annotations

from typing import Any

import attrs

from handoff_core import events as ev
from handoff_core.conversation import DEFAULT_POLICY, Conversation, handle
from handoff_core.machine import TRANSITIONS, State
from handoff_core.policy import Policy

CID = "c"
SESSION = f"{CID}#1"
T0 = 1_000.0


def drive(conv: Conversation, *events: ev.Event, policy: Policy = DEFAULT_POLICY) -> Conversation:
    """Apply events one by one, marking each step's effects done."""
    for event in events:
        step = handle(conv, event, policy)
        conv = attrs.evolve(step.conversation, outbox=())
    return conv


def timer_id(conv: Conversation, kind: ev.TimerKind) -> str:
    for timer in conv.timers:
        if timer.kind is kind:
            return timer.timer_id
    raise AssertionError(f"no {kind} timer in {conv.timers}")


def conversation_in(state: State, policy: Policy, *, at: float = T0) -> Conversation:
    conv = Conversation.new(CID)
    if state is State.BOT:
        return drive(conv, ev.UserMessage(at=at, text="hello"), policy=policy)
    conv = drive(conv, ev.UserMessage(at=at, text="agent"), policy=policy)
    session = conv.agent_session
    assert session is not None
    if state is State.ESCALATING:
        return conv
    if policy.check_availability:
        conv = drive(conv, ev.AvailabilityChecked(at=at, available=True), policy=policy)
    conv = drive(
        conv,
        ev.AgentSessionOpened(at=at, session=session, backend="test", cursor={"ack": -1}),
        ev.AgentAccepted(at=at, session=session, queue_position=2, peer_id="1"),
        policy=policy,
    )
    if state is State.QUEUED:
        return conv
    if state is State.TRANSFER_FAILED:
        return drive(
            conv,
            ev.TransferRejected(at=at, session=session, reason=ev.RejectReason.NO_AGENT_AVAILABLE),
            policy=policy,
        )
    conv = drive(
        conv, ev.AgentJoined(at=at, session=session, agent_name="Ada", peer_id="2"), policy=policy
    )
    if state is State.AGENT_CONNECTED:
        return conv
    assert state is State.USER_ENDED
    return drive(conv, ev.UserMessage(at=at, text="endagentchat"), policy=policy)


def row_scenario(index: int, source: State) -> tuple[Policy, Conversation, ev.Event]:
    """A (policy, conversation in ``source``, event) that makes row ``index`` fire."""
    row = TRANSITIONS[index]
    trigger: str = row["trigger"]
    guards = set(row.get("conditions", [])) | {f"not {u}" for u in row.get("unless", [])}
    options: dict[str, Any] = {}
    if trigger == "availability_checked":
        options["check_availability"] = True
    if "is_idle_timer" in guards:
        options["idle_timeout"] = 60.0
    policy = Policy(**options)
    conv = conversation_in(source, policy)
    at = T0 + 1
    session = conv.agent_session or "gone#9"

    event: ev.Event
    if trigger == "user_message":
        text = "hello"
        if "is_end_keyword" in guards:
            text = "endagentchat"
        elif "asks_for_agent" in guards:
            text = "agent"
        event = ev.UserMessage(at=at, text=text)
    elif trigger == "user_typing":
        event = ev.UserTyping(at=at, typing=True)
    elif trigger == "user_left":
        event = ev.UserLeft(at=at)
    elif trigger == "bot_replied":
        not_understood = "too_many_not_understood" in guards
        if not_understood:
            conv = drive(
                conv, *[ev.BotReplied(at=at, text="?", not_understood=True)] * 2, policy=policy
            )
        event = ev.BotReplied(at=at, text="bot says", not_understood=not_understood)
    elif trigger == "bot_failed":
        if "too_many_bot_errors" in guards:
            conv = drive(conv, *[ev.BotFailed(at=at)] * 2, policy=policy)
        event = ev.BotFailed(at=at, description="boom")
    elif trigger == "bot_escalated":
        event = ev.BotEscalated(
            at=at,
            targets=(ev.EscalationTarget(kind="queue", value="q1"),),
            variables={"tier": "gold"},
            message_id="m1",
        )
    elif trigger == "bot_transfer_failed":
        conv = attrs.evolve(conv, bot="billing")  # as if the transfer had been asked for
        event = ev.BotTransferFailed(at=at, target_bot="billing", description="503")
    elif trigger == "bot_transfer_requested":
        event = ev.BotTransferRequested(at=at, target_bot="billing", variables={"x": 1})
    elif trigger == "availability_checked":
        event = ev.AvailabilityChecked(
            at=at, available="not is_available" not in guards, backend="test"
        )
    elif trigger == "agent_session_opened":
        event = ev.AgentSessionOpened(at=at, session=session, backend="test", cursor={"k": 1})
    elif trigger == "agent_cursor_advanced":
        event = ev.AgentCursorAdvanced(at=at, session=session, cursor={"ack": 7})
    elif trigger in ("agent_accepted", "queue_updated"):
        cls = ev.AgentAccepted if trigger == "agent_accepted" else ev.QueueUpdated
        event = cls(at=at, session=session, queue_position=1, estimated_wait=120)
    elif trigger == "agent_joined":
        event = ev.AgentJoined(at=at, session=session, agent_name="Grace")
    elif trigger == "agent_message":
        event = ev.AgentMessage(at=at, session=session, text="Hi, I'm here")
    elif trigger == "agent_typing":
        event = ev.AgentTyping(at=at, session=session, typing=True)
    elif trigger == "agent_transferred":
        event = ev.AgentTransferred(at=at, session=session, agent_name="Linus")
    elif trigger == "agent_ended":
        event = ev.AgentEnded(at=at, session=session)
    elif trigger == "transfer_rejected":
        event = ev.TransferRejected(at=at, session=session, reason=ev.RejectReason.ERROR)
    elif trigger == "backend_session_lost":
        event = ev.BackendSessionLost(at=at, session=session, description="403")
    elif trigger == "timer_fired":
        if "is_queue_timer" in guards:
            kind = ev.TimerKind.QUEUE_TIMEOUT
            at = T0 + 301
        else:
            kind = ev.TimerKind.IDLE_TIMEOUT
            if "idle_expired" in guards:
                at = T0 + 61
            else:  # activity 30 s after the join keeps the chat alive past the first deadline
                conv = drive(conv, ev.UserMessage(at=T0 + 30, text="still there?"), policy=policy)
                at = T0 + 60
        event = ev.TimerFired(at=at, timer=kind, timer_id=timer_id(conv, kind))
    else:  # pragma: no cover - a new trigger needs a scenario here
        raise AssertionError(f"no scenario for trigger {trigger}")
    return policy, conv, event
