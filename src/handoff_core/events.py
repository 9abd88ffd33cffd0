"""Events: everything that can happen to a conversation, one small frozen class per fact.

Events come from four sides: the user (through a channel), the bot platform, the agent backend,
and the runtime (timers, results of effects). Each class names the trigger of the state machine
it fires (``TRIGGER``). Time enters as the ``at`` field (seconds since the epoch): the core has no
clock.

Events that come from a remote peer carry ``peer_id`` (the peer's own id for that event, or a
cursor position) so the core can drop a duplicate, and may carry ``cursor``: the adapter's
resumable position after this event, which the core stores with the conversation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias

import attrs

from handoff_core.errors import LocalProtocolError

__all__ = [
    "AgentAccepted",
    "AgentCursorAdvanced",
    "AgentEnded",
    "AgentEvent",
    "AgentJoined",
    "AgentMessage",
    "AgentSessionOpened",
    "AgentTransferred",
    "AgentTyping",
    "AvailabilityChecked",
    "BackendSessionLost",
    "BotEscalated",
    "BotEvent",
    "BotFailed",
    "BotReplied",
    "BotTransferFailed",
    "BotTransferRequested",
    "Cursor",
    "EscalationReason",
    "EscalationTarget",
    "Event",
    "QueueUpdated",
    "RejectReason",
    "Scalar",
    "TimerFired",
    "TimerKind",
    "TransferRejected",
    "UserEvent",
    "UserLeft",
    "UserMessage",
    "UserTyping",
]

#: A JSON scalar: what cursors, variables and pre-chat values are made of.
Scalar: TypeAlias = str | int | float | bool | None
#: An adapter's resumable position (session key, ack, last event id…): flat, JSON-ready, opaque
#: to the core.
Cursor: TypeAlias = Mapping[str, Scalar]


class EscalationReason(enum.Enum):
    """Why the conversation is moving to an agent."""

    USER_REQUEST = "user_request"
    BOT_DECISION = "bot_decision"
    ERROR = "error"
    NOT_UNDERSTOOD = "not_understood"


class RejectReason(enum.Enum):
    """Why an agent backend could not take (or keep) a conversation before an agent joined."""

    NO_AGENT_AVAILABLE = "no_agent_available"
    UNAVAILABLE = "unavailable"
    ERROR = "error"


class TimerKind(enum.Enum):
    QUEUE_TIMEOUT = "queue_timeout"
    IDLE_TIMEOUT = "idle_timeout"


# -- validation helpers: bad input is the caller's fault, so LocalProtocolError -------------------


def _finite_time(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected a finite number of seconds "
            f"since the epoch, got {value!r}"
        )


def _text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected str, got {type(value).__name__}"
        )


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _text(instance, attribute, value)
    if not value:
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected a non-empty string"
        )


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected str or None, "
            f"got {type(value).__name__}"
        )


def _optional_count(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected a non-negative int or None, "
            f"got {value!r}"
        )


def _optional_seconds(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected non-negative seconds or None, "
            f"got {value!r}"
        )


def _flat_mapping(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "cursor":
        return
    if not isinstance(value, Mapping):
        raise LocalProtocolError(
            f"{type(instance).__name__}.{attribute.name}: expected a mapping of str to JSON "
            f"scalars, got {type(value).__name__}"
        )
    for key, item in value.items():
        if not isinstance(key, str):
            raise LocalProtocolError(
                f"{type(instance).__name__}.{attribute.name}: keys must be str, got {key!r}"
            )
        if item is not None and not isinstance(item, str | int | float | bool):
            raise LocalProtocolError(
                f"{type(instance).__name__}.{attribute.name}[{key!r}]: expected a JSON scalar, "
                f"got {type(item).__name__}"
            )


def redacted(value: Mapping[str, Scalar] | None) -> str:
    """``repr`` of a cursor: its keys only. Cursors hold session keys and tokens."""
    if value is None:
        return "None"
    return "<cursor " + ",".join(sorted(value)) + ">"


def _frozen_mapping(value: Mapping[str, Scalar] | None) -> Mapping[str, Scalar] | None:
    # Copy so a caller mutating its dict afterwards cannot change a frozen event.
    return dict(value) if isinstance(value, Mapping) else value


# -- the events ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Event:
    """Base of all events. Don't subclass outside this module: the table knows these only."""

    TRIGGER: ClassVar[str] = ""
    at: float = attrs.field(validator=_finite_time)


@attrs.frozen(kw_only=True)
class UserEvent(Event):
    """Something the end user did in the chat window.

    ``cursor`` is the channel's resumable reply address (e.g. Kore's per-request callback URLs),
    stored as ``conversation.channel_cursor`` so another process can answer later.
    """

    cursor: Cursor | None = attrs.field(
        default=None, converter=_frozen_mapping, validator=_flat_mapping, repr=redacted
    )


@attrs.frozen(kw_only=True)
class UserMessage(UserEvent):
    """The user said something."""

    TRIGGER: ClassVar[str] = "user_message"
    text: str = attrs.field(validator=_text)
    #: The channel's id for this message, if it has one: a repeat of a recent id is dropped.
    message_id: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class UserTyping(UserEvent):
    """The user started (``typing=True``) or stopped typing."""

    TRIGGER: ClassVar[str] = "user_typing"
    typing: bool = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class UserLeft(UserEvent):
    """The user closed the chat window, hung up, or the channel ended the conversation."""

    TRIGGER: ClassVar[str] = "user_left"


@attrs.frozen(kw_only=True)
class BotEvent(Event):
    """Something the bot platform did."""

    peer_id: str | None = attrs.field(default=None, validator=_optional_text)
    cursor: Cursor | None = attrs.field(
        default=None, converter=_frozen_mapping, validator=_flat_mapping, repr=redacted
    )


@attrs.frozen(kw_only=True)
class BotReplied(BotEvent):
    """The bot answered; ``not_understood`` marks a fallback answer (the intent was not found)."""

    TRIGGER: ClassVar[str] = "bot_replied"
    text: str = attrs.field(validator=_text)
    not_understood: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class BotFailed(BotEvent):
    """The bot platform failed to answer (HTTP error, timeout, an error response)."""

    TRIGGER: ClassVar[str] = "bot_failed"
    description: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class EscalationTarget:
    """Where the bot wants the conversation routed: a queue, skill, flow, button or another bot."""

    kind: str = attrs.field(validator=_non_empty)
    value: str = attrs.field(validator=_non_empty)
    label: str | None = attrs.field(default=None, validator=_optional_text)


def _targets(value: object) -> tuple[EscalationTarget, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    raise LocalProtocolError(f"targets: expected a tuple of EscalationTarget, got {value!r}")


def _target_items(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    assert isinstance(value, tuple)
    for item in value:
        if not isinstance(item, EscalationTarget):
            raise LocalProtocolError(
                f"{type(instance).__name__}.{attribute.name}: expected EscalationTarget items, "
                f"got {type(item).__name__}"
            )


@attrs.frozen(kw_only=True)
class BotEscalated(BotEvent):
    """The bot (or the channel on its behalf) asks for a human agent."""

    TRIGGER: ClassVar[str] = "bot_escalated"
    reason: EscalationReason = attrs.field(
        default=EscalationReason.BOT_DECISION,
        validator=attrs.validators.instance_of(EscalationReason),
    )
    targets: tuple[EscalationTarget, ...] = attrs.field(
        default=(), converter=_targets, validator=_target_items
    )
    variables: Mapping[str, Scalar] = attrs.field(
        factory=dict, converter=_frozen_mapping, validator=_flat_mapping
    )
    prechat: Mapping[str, Scalar] = attrs.field(
        factory=dict, converter=_frozen_mapping, validator=_flat_mapping
    )
    #: The id of the bot message that asked to escalate (Einstein's escalate message id), echoed
    #: back in the transfer outcome report.
    message_id: str | None = attrs.field(default=None, validator=_optional_text)
    #: The end keyword this conversation should use (Kore's ``endChatShortHandCommand``).
    end_keyword: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class BotTransferRequested(BotEvent):
    """The bot hands the conversation to another bot, carrying its variables."""

    TRIGGER: ClassVar[str] = "bot_transfer_requested"
    target_bot: str = attrs.field(validator=_non_empty)
    variables: Mapping[str, Scalar] = attrs.field(
        factory=dict, converter=_frozen_mapping, validator=_flat_mapping
    )


@attrs.frozen(kw_only=True)
class BotTransferFailed(BotEvent):
    """Starting the session on the target bot failed (result of ``StartBotSession``)."""

    TRIGGER: ClassVar[str] = "bot_transfer_failed"
    target_bot: str = attrs.field(validator=_non_empty)
    #: The bot that asked for the transfer, which keeps the conversation (``None``: the default).
    source_bot: str | None = attrs.field(default=None, validator=_optional_text)
    description: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class AgentEvent(Event):
    """Something the agent backend reported for one agent session.

    ``session`` is the id the core gave the session in
    :class:`~handoff_core.effects.OpenAgentSession`;
    events of any other session are stale and dropped.
    """

    session: str = attrs.field(validator=_non_empty)
    peer_id: str | None = attrs.field(default=None, validator=_optional_text)
    cursor: Cursor | None = attrs.field(
        default=None, converter=_frozen_mapping, validator=_flat_mapping, repr=redacted
    )


@attrs.frozen(kw_only=True)
class AgentSessionOpened(AgentEvent):
    """The backend opened the session the core asked for (result of ``OpenAgentSession``)."""

    TRIGGER: ClassVar[str] = "agent_session_opened"
    backend: str = attrs.field(validator=_non_empty)


@attrs.frozen(kw_only=True)
class AgentCursorAdvanced(AgentEvent):
    """The adapter's resumable position moved with nothing to show the user (e.g. a reconnect)."""

    TRIGGER: ClassVar[str] = "agent_cursor_advanced"


@attrs.frozen(kw_only=True)
class AgentAccepted(AgentEvent):
    """The backend accepted the request and queued it."""

    TRIGGER: ClassVar[str] = "agent_accepted"
    queue_position: int | None = attrs.field(default=None, validator=_optional_count)
    estimated_wait: float | None = attrs.field(default=None, validator=_optional_seconds)


@attrs.frozen(kw_only=True)
class QueueUpdated(AgentEvent):
    TRIGGER: ClassVar[str] = "queue_updated"
    queue_position: int | None = attrs.field(default=None, validator=_optional_count)
    estimated_wait: float | None = attrs.field(default=None, validator=_optional_seconds)


@attrs.frozen(kw_only=True)
class AgentJoined(AgentEvent):
    TRIGGER: ClassVar[str] = "agent_joined"
    agent_name: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class AgentMessage(AgentEvent):
    TRIGGER: ClassVar[str] = "agent_message"
    text: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class AgentTyping(AgentEvent):
    TRIGGER: ClassVar[str] = "agent_typing"
    typing: bool = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class AgentTransferred(AgentEvent):
    """The conversation moved to another agent (or queue) inside the backend."""

    TRIGGER: ClassVar[str] = "agent_transferred"
    agent_name: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class AgentEnded(AgentEvent):
    """The agent (or the backend on its behalf) ended the chat."""

    TRIGGER: ClassVar[str] = "agent_ended"
    reason: str = attrs.field(default="agent", validator=_text)


@attrs.frozen(kw_only=True)
class TransferRejected(AgentEvent):
    """The backend could not take the conversation: no agent, not available, or an error."""

    TRIGGER: ClassVar[str] = "transfer_rejected"
    reason: RejectReason = attrs.field(validator=attrs.validators.instance_of(RejectReason))
    description: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class BackendSessionLost(AgentEvent):
    """The session died under us (403, expired token, repeated failures)."""

    TRIGGER: ClassVar[str] = "backend_session_lost"
    description: str = attrs.field(default="", validator=_text)


@attrs.frozen(kw_only=True)
class AvailabilityChecked(Event):
    """Result of a ``CheckAgentAvailability`` effect."""

    TRIGGER: ClassVar[str] = "availability_checked"
    available: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    backend: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class TimerFired(Event):
    """A timer the core scheduled has expired. ``timer_id`` must match the scheduled one."""

    TRIGGER: ClassVar[str] = "timer_fired"
    timer: TimerKind = attrs.field(validator=attrs.validators.instance_of(TimerKind))
    timer_id: str = attrs.field(validator=_non_empty)


#: Every event class the core understands, by trigger name.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.TRIGGER: cls
    for cls in (
        UserMessage,
        UserTyping,
        UserLeft,
        BotReplied,
        BotFailed,
        BotEscalated,
        BotTransferRequested,
        BotTransferFailed,
        AgentSessionOpened,
        AgentCursorAdvanced,
        AgentAccepted,
        QueueUpdated,
        AgentJoined,
        AgentMessage,
        AgentTyping,
        AgentTransferred,
        AgentEnded,
        TransferRejected,
        BackendSessionLost,
        AvailabilityChecked,
        TimerFired,
    )
}
