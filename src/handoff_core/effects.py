"""Effects: what the core asks the outside world to do, one small frozen class per command.

The core never calls a port. :func:`handoff_core.handle` returns effects; the runtime saves them
with the new state (the outbox), executes them through the ports, and marks them done.

Every effect carries ``key``: an idempotency key unique to the conversation and the step that
produced it (``"<conversation>/<step>/<index>"``). An adapter that can pass an idempotency key to
its peer (MIAW message ids, Live Agent's ``X-LIVEAGENT-SEQUENCE``) derives it from the key or from
``ordinal`` so a step that is re-run after a crash is recognised as the same request.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from handoff_core.events import (
    Cursor,
    EscalationReason,
    EscalationTarget,
    Scalar,
    TimerKind,
    redacted,
)

__all__ = [
    "AgentEffect",
    "CancelTimer",
    "CheckAgentAvailability",
    "CloseAgentSession",
    "CloseReason",
    "DeliverToUser",
    "Effect",
    "ForwardToAgent",
    "ForwardToBot",
    "HandoffContext",
    "OpenAgentSession",
    "ReportTransferOutcome",
    "ScheduleTimer",
    "Sender",
    "SetAgentTyping",
    "SetUserTyping",
    "StartBotSession",
    "TranscriptEntry",
    "TransferOutcome",
]


class Sender(enum.Enum):
    """Who a delivery to the user speaks as."""

    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class CloseReason(enum.Enum):
    USER_ENDED = "user_ended"
    USER_LEFT = "user_left"
    AGENT_ENDED = "agent_ended"
    TRANSFER_FAILED = "transfer_failed"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_LOST = "session_lost"


class TransferOutcome(enum.Enum):
    """What the bot is told about a transfer (the values Einstein's API uses for failures)."""

    SUCCEEDED = "Succeeded"
    NO_AGENT_AVAILABLE = "NoAgentAvailable"
    ERROR = "Error"


@attrs.frozen(kw_only=True)
class TranscriptEntry:
    """One line of the recent transcript handed to the agent."""

    sender: str  # "user", "bot", "agent" or "system"
    text: str
    at: float


@attrs.frozen(kw_only=True)
class HandoffContext:
    """Everything an agent backend needs to open a session for this conversation."""

    conversation_id: str
    language: str
    user_name: str | None
    reason: EscalationReason
    targets: tuple[EscalationTarget, ...]
    prechat: Mapping[str, Scalar]
    variables: Mapping[str, Scalar]
    transcript: tuple[TranscriptEntry, ...]


@attrs.frozen(kw_only=True)
class Effect:
    """Base of all effects."""

    key: str


@attrs.frozen(kw_only=True)
class DeliverToUser(Effect):
    """Show something to the user.

    ``text`` is always set (system messages arrive rendered in the conversation's language);
    ``message_key`` and ``params`` let a channel render its own text for system messages.
    """

    sender: Sender
    text: str
    message_key: str | None = None
    params: Mapping[str, str] = attrs.field(factory=dict)
    agent_name: str | None = None
    language: str = "en"


@attrs.frozen(kw_only=True)
class SetUserTyping(Effect):
    """Show or hide the typing indicator in the user's chat window."""

    typing: bool
    agent_name: str | None = None


@attrs.frozen(kw_only=True)
class ForwardToBot(Effect):
    text: str
    bot: str | None = None
    message_id: str | None = None


@attrs.frozen(kw_only=True)
class StartBotSession(Effect):
    """Bot-to-bot transfer: start a session with ``target_bot`` carrying the variables."""

    target_bot: str
    source_bot: str | None
    variables: Mapping[str, Scalar]


@attrs.frozen(kw_only=True)
class ReportTransferOutcome(Effect):
    """Tell the bot how its escalation ended. Emitted exactly once per escalation."""

    outcome: TransferOutcome
    description: str
    escalation_message_id: str | None


@attrs.frozen(kw_only=True)
class CheckAgentAvailability(Effect):
    targets: tuple[EscalationTarget, ...]
    language: str


@attrs.frozen(kw_only=True)
class AgentEffect(Effect):
    """An effect addressed to one agent session.

    ``ordinal`` counts the requests the core sent to this session (1, 2, 3…); it is stable across
    retries of the same step, so adapters can use it as the peer's de-duplication sequence.
    """

    session: str
    ordinal: int


@attrs.frozen(kw_only=True)
class OpenAgentSession(AgentEffect):
    context: HandoffContext
    #: The backend the availability check chose, if there was a check.
    backend: str | None = None


@attrs.frozen(kw_only=True)
class ForwardToAgent(AgentEffect):
    text: str


@attrs.frozen(kw_only=True)
class SetAgentTyping(AgentEffect):
    typing: bool


@attrs.frozen(kw_only=True)
class CloseAgentSession(AgentEffect):
    reason: CloseReason
    #: True when the peer ended the session itself: release local resources, send nothing.
    peer_closed: bool = False
    #: The session's last cursor (the conversation record no longer holds it).
    cursor: Cursor | None = attrs.field(default=None, repr=redacted)


@attrs.frozen(kw_only=True)
class ScheduleTimer(Effect):
    timer: TimerKind
    timer_id: str
    delay: float
    #: When the timer was set (event time); fires at ``set_at + delay``.
    set_at: float


@attrs.frozen(kw_only=True)
class CancelTimer(Effect):
    timer: TimerKind
    timer_id: str
