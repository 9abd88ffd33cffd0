"""The conversation record and ``handle(conversation, event) -> Step``.

A :class:`Conversation` is frozen plain data: everything a store needs to resume it anywhere
(state, cursors of the bot and agent adapters, buffered user messages, timers, the outbox).
:func:`handle` is pure: it returns a new record and the effects to run, or raises and changes
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs
from transitions import EventData, MachineError

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.errors import LocalProtocolError, RemoteProtocolError
from handoff_core.machine import AGENT_TRIGGERS, MACHINE, ROW_OF_TRANSITION, State
from handoff_core.messages import resolve_language
from handoff_core.policy import Policy

__all__ = [
    "AuditRecord",
    "BufferedMessage",
    "Conversation",
    "Escalation",
    "Step",
    "Timer",
    "handle",
]

DEFAULT_POLICY: Final = Policy()


@attrs.frozen(kw_only=True)
class AuditRecord:
    """One state change: from, to, the trigger that caused it, why, and when (event time)."""

    step: int
    source: State
    dest: State
    trigger: str
    cause: str
    at: float


@attrs.frozen(kw_only=True)
class BufferedMessage:
    """A user message said while waiting for an agent, delivered once one joins."""

    text: str
    message_id: str | None
    at: float


@attrs.frozen(kw_only=True)
class Timer:
    kind: ev.TimerKind
    timer_id: str
    set_at: float
    delay: float

    @property
    def fires_at(self) -> float:
        return self.set_at + self.delay


@attrs.frozen(kw_only=True)
class Escalation:
    """The escalation in progress (or the last one)."""

    number: int
    reason: ev.EscalationReason
    targets: tuple[ev.EscalationTarget, ...]
    message_id: str | None
    started_at: float
    #: True once ``OpenAgentSession`` was emitted (False while the availability check runs).
    session_requested: bool = False
    awaiting_availability: bool = False
    #: The backend the availability check picked, passed on to ``OpenAgentSession``.
    backend: str | None = None
    #: The bot is told the outcome of an escalation exactly once.
    outcome_reported: bool = False


@attrs.frozen(kw_only=True)
class Conversation:
    """Everything about one conversation, as plain data.

    Serialize with :mod:`handoff_core.serialization`.
    """

    id: str
    state: State = State.BOT
    language: str = "en"
    user_name: str | None = None
    prechat: Mapping[str, ev.Scalar] = attrs.field(factory=dict)
    variables: Mapping[str, ev.Scalar] = attrs.field(factory=dict)
    #: The end keyword for this conversation, when the bot platform chose one.
    end_keyword: str | None = None
    #: The bot currently in charge (changes on bot-to-bot transfer); ``None``: the default bot.
    bot: str | None = None
    bot_cursor: Mapping[str, ev.Scalar] | None = attrs.field(default=None, repr=ev.redacted)
    #: The user channel's reply address, when it has one per conversation (see ``UserEvent``).
    channel_cursor: Mapping[str, ev.Scalar] | None = attrs.field(default=None, repr=ev.redacted)
    step: int = 0
    bot_errors: int = 0
    not_understood: int = 0
    escalations: int = 0
    escalation: Escalation | None = None
    agent_session: str | None = None
    agent_backend: str | None = None
    agent_cursor: Mapping[str, ev.Scalar] | None = attrs.field(default=None, repr=ev.redacted)
    #: Requests sent to the current agent session (see ``AgentEffect.ordinal``).
    agent_ordinal: int = 0
    agent_name: str | None = None
    queue_position: int | None = None
    estimated_wait: float | None = None
    pending: tuple[BufferedMessage, ...] = ()
    timers: tuple[Timer, ...] = ()
    last_activity_at: float | None = None
    transcript: tuple[fx.TranscriptEntry, ...] = ()
    #: Recent peer event ids (namespaced), to drop duplicates.
    seen: tuple[str, ...] = ()
    audit: tuple[AuditRecord, ...] = ()
    #: Effects of the last step not yet marked done by the runtime.
    outbox: tuple[fx.Effect, ...] = ()
    #: Which runtime is performing the outbox, and until when its claim holds (runtime time).
    #: Another runtime finishes the outbox only after the claim has expired (its owner died).
    lease_owner: str | None = None
    lease_until: float | None = None

    @classmethod
    def new(
        cls,
        conversation_id: str,
        *,
        language: str | None = None,
        user_name: str | None = None,
        prechat: Mapping[str, ev.Scalar] | None = None,
        bot: str | None = None,
    ) -> Conversation:
        if not isinstance(conversation_id, str) or not conversation_id:
            raise LocalProtocolError(
                f"conversation id: expected a non-empty string, got {conversation_id!r}"
            )
        return cls(
            id=conversation_id,
            language=resolve_language(language),
            user_name=user_name,
            prechat=dict(prechat or {}),
            bot=bot,
        )

    @property
    def owner(self) -> str:
        """Who answers the user now: ``"bot"``, ``"agent"`` or ``"pending"`` (waiting for one)."""
        if self.state is State.AGENT_CONNECTED:
            return "agent"
        if self.state in (State.ESCALATING, State.QUEUED):
            return "pending"
        return "bot"

    def timer(self, timer_id: str) -> Timer | None:
        for timer in self.timers:
            if timer.timer_id == timer_id:
                return timer
        return None


@attrs.frozen(kw_only=True)
class Step:
    """What :func:`handle` returns: the new record (outbox filled), or why nothing happened."""

    conversation: Conversation
    effects: tuple[fx.Effect, ...]
    #: The index of the row of :data:`handoff_core.machine.TRANSITIONS` that fired.
    row: int | None = None
    #: Set when the event was dropped without a step: ``"duplicate"``, ``"stale session"``,
    #: ``"stale timer"``. The conversation is then returned unchanged.
    dropped: str | None = None


class _StepContext:
    """The model the shared machine fires on for one step: guards, actions and the changes so far.

    Lives for one call of :func:`handle`; nothing here outlives it.
    """

    def __init__(self, conversation: Conversation, event: ev.Event, policy: Policy) -> None:
        self.conv = conversation
        self.event = event
        self.policy = policy
        self.state = conversation.state  # the machine reads and writes this attribute
        self.changes: dict[str, Any] = {}
        self.effects: list[fx.Effect] = []
        self.cause = event.TRIGGER
        self.step = conversation.step + 1
        self.row: int | None = None

    # -- reading the record with this step's changes applied ------------------------------------

    def get(self, name: str) -> Any:
        return self.changes[name] if name in self.changes else getattr(self.conv, name)

    def set(self, **changes: Any) -> None:
        self.changes.update(changes)

    def emit(self, cls: type[fx.Effect], **fields: Any) -> None:
        key = f"{self.conv.id}/{self.step}/{len(self.effects)}"
        self.effects.append(cls(key=key, **fields))

    def emit_agent(self, cls: type[fx.AgentEffect], **fields: Any) -> None:
        ordinal = self.get("agent_ordinal") + 1
        self.set(agent_ordinal=ordinal)
        self.emit(cls, session=self.get("agent_session"), ordinal=ordinal, **fields)

    def say(self, message_key: str, **params: str) -> None:
        language = self.get("language")
        text = self.policy.messages.render(message_key, language, params)
        self.emit(
            fx.DeliverToUser,
            sender=fx.Sender.SYSTEM,
            text=text,
            message_key=message_key,
            params=params,
            language=language,
        )

    def remember(self, sender: str, text: str) -> None:
        entry = fx.TranscriptEntry(sender=sender, text=text, at=self.event.at)
        limit = self.policy.transcript_limit
        self.set(transcript=(*self.get("transcript"), entry)[-limit:])

    @property
    def end_keyword(self) -> str:
        return self.get("end_keyword") or self.policy.end_keyword

    def note_transition(self, event_data: EventData) -> None:
        self.row = ROW_OF_TRANSITION[id(event_data.transition)]

    # -- guards -----------------------------------------------------------------------------------

    def is_end_keyword(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.UserMessage)
        return self.policy.is_end_keyword(self.event.text, self.end_keyword)

    def asks_for_agent(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.UserMessage)
        return self.policy.asks_for_agent(self.event.text)

    def too_many_not_understood(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.BotReplied)
        limit = self.policy.max_not_understood
        return (
            self.event.not_understood
            and limit is not None
            and self.conv.not_understood + 1 >= limit
        )

    def too_many_bot_errors(self, _: EventData) -> bool:
        limit = self.policy.max_bot_errors
        return limit is not None and self.conv.bot_errors + 1 >= limit

    def awaiting_availability(self, _: EventData) -> bool:
        escalation = self.conv.escalation
        return escalation is not None and escalation.awaiting_availability

    def is_available(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.AvailabilityChecked)
        return self.event.available

    def is_queue_timer(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.TimerFired)
        return self.event.timer is ev.TimerKind.QUEUE_TIMEOUT

    def is_idle_timer(self, _: EventData) -> bool:
        assert isinstance(self.event, ev.TimerFired)
        return self.event.timer is ev.TimerKind.IDLE_TIMEOUT

    def idle_expired(self, _: EventData) -> bool:
        timeout = self.policy.idle_timeout
        last = self.conv.last_activity_at
        return timeout is None or last is None or self.event.at - last >= timeout

    # -- actions: the user ------------------------------------------------------------------------

    def forward_to_bot(self, _: EventData) -> None:
        assert isinstance(self.event, ev.UserMessage)
        self.remember("user", self.event.text)
        self.emit(
            fx.ForwardToBot,
            text=self.event.text,
            bot=self.get("bot"),
            message_id=self.event.message_id,
        )

    def forward_to_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.UserMessage)
        self.remember("user", self.event.text)
        self.set(last_activity_at=self.event.at)
        self.emit_agent(fx.ForwardToAgent, text=self.event.text)

    def buffer_for_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.UserMessage)
        self.remember("user", self.event.text)
        message = _buffered(self.event)
        self.set(pending=(*self.get("pending"), message))

    def forward_typing_to_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.UserTyping)
        self.emit_agent(fx.SetAgentTyping, typing=self.event.typing)

    def escalate_for_user(self, _: EventData) -> None:
        assert isinstance(self.event, ev.UserMessage)
        self.remember("user", self.event.text)
        self._escalate(ev.EscalationReason.USER_REQUEST, (), None)

    def end_by_user(self, _: EventData) -> None:
        waiting = self.conv.state is not State.AGENT_CONNECTED
        self.cause = "end_keyword"
        self._leave_agent(fx.CloseReason.USER_ENDED, peer_closed=False)
        if waiting:
            self._report(fx.TransferOutcome.ERROR, "The user cancelled the transfer.")
            self.say("handoffCancelledMessage")
        else:
            self.say("userEndedMessage")

    def end_because_user_left(self, _: EventData) -> None:
        self.cause = "user_left"
        self._leave_agent(fx.CloseReason.USER_LEFT, peer_closed=False)
        self._report(fx.TransferOutcome.ERROR, "The user left before an agent joined.")

    # -- actions: the bot -------------------------------------------------------------------------

    def deliver_bot_reply(self, _: EventData) -> None:
        assert isinstance(self.event, ev.BotReplied)
        self.remember("bot", self.event.text)
        count = self.conv.not_understood + 1 if self.event.not_understood else 0
        self.set(not_understood=count, bot_errors=0)
        if self.event.text:
            self.emit(
                fx.DeliverToUser,
                sender=fx.Sender.BOT,
                text=self.event.text,
                language=self.get("language"),
            )

    def drop_bot_reply(self, _: EventData) -> None:
        # The agent owns the conversation: a late bot answer must not reach the user.
        self.cause = "bot reply dropped: an agent owns the conversation"

    def escalate_not_understood(self, _: EventData) -> None:
        self._escalate(ev.EscalationReason.NOT_UNDERSTOOD, (), None)

    def escalate_bot_errors(self, _: EventData) -> None:
        self._escalate(ev.EscalationReason.ERROR, (), None)

    def apologise_for_bot(self, _: EventData) -> None:
        self.set(bot_errors=self.conv.bot_errors + 1)
        self.say("botErrorMessage")

    def escalate_for_bot(self, _: EventData) -> None:
        event = self.event
        assert isinstance(event, ev.BotEscalated)
        if event.variables:
            self.set(variables={**self.conv.variables, **event.variables})
        if event.prechat:
            self.set(prechat={**self.conv.prechat, **event.prechat})
        if event.end_keyword:
            self.set(end_keyword=event.end_keyword)
        self._escalate(event.reason, event.targets, event.message_id)

    def ignore_repeated_escalation(self, _: EventData) -> None:
        self.cause = "escalation already in progress"

    def transfer_to_bot(self, _: EventData) -> None:
        event = self.event
        assert isinstance(event, ev.BotTransferRequested)
        variables = {**self.conv.variables, **event.variables}
        self.cause = f"bot transfer to {event.target_bot}"
        self.set(variables=variables, bot=event.target_bot, bot_errors=0, not_understood=0)
        self.say("botTransferMessage")
        self.emit(
            fx.StartBotSession,
            target_bot=event.target_bot,
            source_bot=self.conv.bot,
            variables=variables,
        )

    def stay_with_source_bot(self, _: EventData) -> None:
        event = self.event
        assert isinstance(event, ev.BotTransferFailed)
        self.cause = f"bot transfer to {event.target_bot} failed"
        if self.conv.bot == event.target_bot:
            self.set(bot=event.source_bot)
        self.say("botErrorMessage")

    # -- actions: availability and the agent backend ----------------------------------------------

    def open_agent_session(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AvailabilityChecked)
        escalation = self.get("escalation")
        self.set(
            escalation=attrs.evolve(
                escalation, awaiting_availability=False, backend=self.event.backend
            )
        )
        self._open_session()

    def fail_unavailable(self, _: EventData) -> None:
        self._fail(
            fx.TransferOutcome.NO_AGENT_AVAILABLE,
            "No agent is available.",
            "noAgentAvailableMessage",
            peer_closed=True,
            cause="unavailable",
        )

    def remember_backend(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentSessionOpened)
        self.set(agent_backend=self.event.backend)

    def announce_queue(self, _: EventData) -> None:
        event = self.event
        assert isinstance(event, ev.AgentAccepted | ev.QueueUpdated)
        position, wait = event.queue_position, event.estimated_wait
        if self.state is State.AGENT_CONNECTED:
            return  # a late queue update after the agent joined: nothing to tell
        if position == self.conv.queue_position and wait == self.conv.estimated_wait:
            return  # nothing new to tell the user
        self.set(queue_position=position, estimated_wait=wait)
        if position is None:
            return
        if wait is not None and wait > 0:
            minutes = max(1, round(wait / 60))
            self.say("estimatedWaitMessage", position=str(position), minutes=str(minutes))
        else:
            self.say("queuePositionMessage", position=str(position))

    def connect_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentJoined)
        name = self.event.agent_name
        self.set(agent_name=name or None, last_activity_at=self.event.at)
        self._cancel_timers(ev.TimerKind.QUEUE_TIMEOUT)
        if name:
            self.say("agentJoinedMessage", agent=name)
        else:
            self.say("agentJoinedUnnamedMessage")
        self.say("endChatFromUserInstruction", keyword=self.end_keyword)
        self._report(fx.TransferOutcome.SUCCEEDED, f"Agent {name} joined." if name else "")
        for message in self.get("pending"):
            self.emit_agent(fx.ForwardToAgent, text=message.text)
        self.set(pending=())
        if self.policy.idle_timeout is not None:
            self._schedule(ev.TimerKind.IDLE_TIMEOUT, self.policy.idle_timeout)

    def announce_new_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentJoined)
        if self.event.agent_name and self.event.agent_name != self.conv.agent_name:
            self.set(agent_name=self.event.agent_name)
            self.say("agentJoinedMessage", agent=self.event.agent_name)

    def deliver_agent_message(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentMessage)
        self.remember("agent", self.event.text)
        self.set(last_activity_at=self.event.at)
        self.emit(
            fx.DeliverToUser,
            sender=fx.Sender.AGENT,
            text=self.event.text,
            agent_name=self.get("agent_name"),
            language=self.get("language"),
        )

    def show_agent_typing(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentTyping)
        self.emit(fx.SetUserTyping, typing=self.event.typing, agent_name=self.conv.agent_name)

    def announce_transfer(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentTransferred)
        name = self.event.agent_name
        self.set(agent_name=name or None)
        if name:
            self.say("agentTransferredMessage", agent=name)
        else:
            self.say("agentTransferredUnnamedMessage")

    def close_by_agent(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentEnded)
        self.cause = f"agent ended ({self.event.reason})"
        self._leave_agent(fx.CloseReason.AGENT_ENDED, peer_closed=True)
        self.say("conversationClosedMessage")

    def close_lost_session(self, _: EventData) -> None:
        assert isinstance(self.event, ev.BackendSessionLost)
        self.cause = f"session lost: {self.event.description}".rstrip(": ")
        self._leave_agent(fx.CloseReason.SESSION_LOST, peer_closed=True)
        self.say("agentConnectionLostMessage")

    def fail_ended_before_join(self, _: EventData) -> None:
        assert isinstance(self.event, ev.AgentEnded)
        self._fail(
            fx.TransferOutcome.ERROR,
            "The chat ended before an agent joined.",
            "transferFailedMessage",
            peer_closed=True,
            cause="ended before join",
        )

    def fail_rejected(self, _: EventData) -> None:
        event = self.event
        assert isinstance(event, ev.TransferRejected)
        if event.reason is ev.RejectReason.ERROR:
            outcome, key = fx.TransferOutcome.ERROR, "transferFailedMessage"
        else:
            outcome, key = fx.TransferOutcome.NO_AGENT_AVAILABLE, "noAgentAvailableMessage"
        description = (
            event.description
            or {
                ev.RejectReason.NO_AGENT_AVAILABLE: "No agent is available.",
                ev.RejectReason.UNAVAILABLE: "The agent service is unavailable.",
                ev.RejectReason.ERROR: "The agent service failed.",
            }[event.reason]
        )
        self._fail(outcome, description, key, peer_closed=True, cause=event.reason.value)

    def fail_session_lost(self, _: EventData) -> None:
        assert isinstance(self.event, ev.BackendSessionLost)
        self._fail(
            fx.TransferOutcome.ERROR,
            self.event.description or "The session was lost.",
            "transferFailedMessage",
            peer_closed=True,
            cause="session lost",
        )

    # -- actions: timers --------------------------------------------------------------------------

    def fail_queue_timeout(self, _: EventData) -> None:
        self._fail(
            fx.TransferOutcome.NO_AGENT_AVAILABLE,
            "No agent joined before the queue timeout.",
            "queueTimeoutMessage",
            peer_closed=False,
            cause="queue timeout",
        )

    def end_idle_chat(self, _: EventData) -> None:
        self.cause = "idle timeout"
        self._leave_agent(fx.CloseReason.IDLE_TIMEOUT, peer_closed=False)
        self.say("idleTimeoutMessage")

    def rearm_idle_timer(self, _: EventData) -> None:
        timeout = self.policy.idle_timeout
        last = self.conv.last_activity_at
        assert timeout is not None
        assert last is not None
        self._schedule(ev.TimerKind.IDLE_TIMEOUT, last + timeout - self.event.at)

    # -- shared pieces ----------------------------------------------------------------------------

    def _escalate(
        self,
        reason: ev.EscalationReason,
        targets: tuple[ev.EscalationTarget, ...],
        message_id: str | None,
    ) -> None:
        number = self.conv.escalations + 1
        check = self.policy.check_availability
        self.cause = reason.value
        self.set(
            escalations=number,
            escalation=Escalation(
                number=number,
                reason=reason,
                targets=targets,
                message_id=message_id,
                started_at=self.event.at,
                awaiting_availability=check,
            ),
            agent_session=f"{self.conv.id}#{number}",
            agent_backend=None,
            agent_cursor=None,
            agent_ordinal=0,
            agent_name=None,
            queue_position=None,
            estimated_wait=None,
            bot_errors=0,
            not_understood=0,
        )
        self.say("lookingForAgentMessage")
        if self.policy.queue_timeout is not None:
            self._schedule(ev.TimerKind.QUEUE_TIMEOUT, self.policy.queue_timeout)
        if check:
            self.emit(fx.CheckAgentAvailability, targets=targets, language=self.get("language"))
        else:
            self._open_session()

    def _open_session(self) -> None:
        escalation: Escalation = self.get("escalation")
        self.set(escalation=attrs.evolve(escalation, session_requested=True))
        context = fx.HandoffContext(
            conversation_id=self.conv.id,
            language=self.get("language"),
            user_name=self.get("user_name"),
            reason=escalation.reason,
            targets=escalation.targets,
            prechat=self.get("prechat"),
            variables=self.get("variables"),
            transcript=self.get("transcript"),
        )
        self.emit_agent(fx.OpenAgentSession, context=context, backend=escalation.backend)

    def _report(self, outcome: fx.TransferOutcome, description: str) -> None:
        escalation: Escalation | None = self.get("escalation")
        if escalation is None or escalation.outcome_reported:
            return
        self.set(escalation=attrs.evolve(escalation, outcome_reported=True))
        self.emit(
            fx.ReportTransferOutcome,
            outcome=outcome,
            description=description,
            escalation_message_id=escalation.message_id,
        )

    def _leave_agent(self, reason: fx.CloseReason, *, peer_closed: bool) -> None:
        """Close the agent session, cancel its timers, and give buffered messages to the bot."""
        escalation: Escalation | None = self.get("escalation")
        if escalation is not None and escalation.session_requested:
            # The record forgets the session in this step; the close still needs its cursor.
            self.emit_agent(
                fx.CloseAgentSession,
                reason=reason,
                peer_closed=peer_closed,
                cursor=self.get("agent_cursor"),
            )
        self._cancel_timers()
        for message in self.get("pending"):
            # Nothing a user said is lost: an agent never came, so the bot gets it.
            self.emit(
                fx.ForwardToBot,
                text=message.text,
                bot=self.get("bot"),
                message_id=message.message_id,
            )
        self.set(
            pending=(),
            agent_session=None,
            agent_cursor=None,
            agent_name=None,
            queue_position=None,
            estimated_wait=None,
        )

    def _fail(
        self,
        outcome: fx.TransferOutcome,
        description: str,
        message_key: str,
        *,
        peer_closed: bool,
        cause: str,
    ) -> None:
        self.cause = cause
        self.say(message_key)
        self._report(outcome, description)
        self._leave_agent(fx.CloseReason.TRANSFER_FAILED, peer_closed=peer_closed)

    def _schedule(self, kind: ev.TimerKind, delay: float) -> None:
        session = self.get("agent_session")
        timer_id = f"{session}:{kind.value}:{self.step}"
        timer = Timer(kind=kind, timer_id=timer_id, set_at=self.event.at, delay=delay)
        self.set(timers=(*self.get("timers"), timer))
        self.emit(
            fx.ScheduleTimer, timer=kind, timer_id=timer_id, delay=delay, set_at=self.event.at
        )

    def _cancel_timers(self, kind: ev.TimerKind | None = None) -> None:
        fired = self.event.timer_id if isinstance(self.event, ev.TimerFired) else None
        keep = []
        for timer in self.get("timers"):
            if kind is not None and timer.kind is not kind:
                keep.append(timer)
            elif timer.timer_id != fired:  # a timer that just fired needs no cancelling
                self.emit(fx.CancelTimer, timer=timer.kind, timer_id=timer.timer_id)
        self.set(timers=tuple(keep))


def _buffered(event: ev.UserMessage) -> BufferedMessage:
    return BufferedMessage(text=event.text, message_id=event.message_id, at=event.at)


def _peer_key(event: ev.Event) -> str | None:
    if isinstance(event, ev.AgentEvent) and event.peer_id is not None:
        return f"agent:{event.session}:{event.peer_id}"
    if isinstance(event, ev.BotEvent) and event.peer_id is not None:
        return f"bot:{event.peer_id}"
    if isinstance(event, ev.UserMessage) and event.message_id is not None:
        # A channel that retries a webhook sends the same message id: apply it once, even when
        # two processes race (the second one's save loses and it re-applies onto the first's).
        return f"user:{event.message_id}"
    return None


def handle(conversation: Conversation, event: ev.Event, policy: Policy = DEFAULT_POLICY) -> Step:
    """Apply one event. Returns the new record (with its outbox) and the effects to run.

    Raises :class:`LocalProtocolError` (our side's event is illegal here) or
    :class:`RemoteProtocolError` (the agent backend's event is) and changes nothing.
    """
    if not isinstance(event, ev.Event) or type(event).TRIGGER not in _TRIGGERABLE:
        raise LocalProtocolError(f"not a handoff event: {event!r}")
    if conversation.outbox:
        raise LocalProtocolError(
            f"conversation {conversation.id!r} has {len(conversation.outbox)} effect(s) not yet "
            "marked done; finish them (Runtime does) before handling another event"
        )
    # Drops: events from a session we already left, timers we cancelled, and duplicates.
    if isinstance(event, ev.AgentEvent) and event.session != conversation.agent_session:
        return Step(conversation=conversation, effects=(), dropped="stale session")
    if isinstance(event, ev.TimerFired) and conversation.timer(event.timer_id) is None:
        return Step(conversation=conversation, effects=(), dropped="stale timer")
    peer_key = _peer_key(event)
    if peer_key is not None and peer_key in conversation.seen:
        return Step(conversation=conversation, effects=(), dropped="duplicate")

    trigger = type(event).TRIGGER
    context = _StepContext(conversation, event, policy)
    try:
        fired = MACHINE.events[trigger].trigger(context)
    except MachineError:
        fired = False
    if not fired:
        error = RemoteProtocolError if trigger in AGENT_TRIGGERS else LocalProtocolError
        raise error(
            f"can't handle {type(event).__name__} in state {conversation.state.value!r} "
            f"(conversation {conversation.id!r})"
        )

    changes = context.changes
    if isinstance(event, ev.TimerFired):
        # The timer that fired is spent (an action may already have replaced the list).
        changes["timers"] = tuple(t for t in context.get("timers") if t.timer_id != event.timer_id)
    if peer_key is not None:
        changes["seen"] = (*conversation.seen, peer_key)[-policy.dedup_window :]
    cursor = getattr(event, "cursor", None)
    if cursor is not None:
        if isinstance(event, ev.AgentEvent):
            if context.get("agent_session") == event.session:
                changes["agent_cursor"] = cursor
        elif isinstance(event, ev.UserEvent):
            changes["channel_cursor"] = cursor
        else:
            changes["bot_cursor"] = cursor
    if context.state is not conversation.state:
        record = AuditRecord(
            step=context.step,
            source=conversation.state,
            dest=context.state,
            trigger=trigger,
            cause=context.cause,
            at=event.at,
        )
        changes["audit"] = (*conversation.audit, record)[-policy.audit_limit :]
    effects = tuple(context.effects)
    new = attrs.evolve(
        conversation, state=context.state, step=context.step, outbox=effects, **changes
    )
    return Step(conversation=new, effects=effects, row=context.row)


_TRIGGERABLE: Final = frozenset(MACHINE.events)
