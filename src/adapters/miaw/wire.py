"""MIAW wire models: the JSON the Messaging for In-App and Web API sends, as attrs classes.

Structured with cattrs from camelCase keys. Unknown keys are tolerated (Salesforce adds fields and
event types at any time); a missing or wrong-typed field we rely on raises
:class:`~handoff_core.errors.RemoteProtocolError` naming it by its wire path
(e.g. ``$.conversationEntry.identifier``). The reference is ``/work/shared/protocols/miaw.md``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, NewType, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from handoff_core.errors import RemoteProtocolError

__all__ = [
    "AbstractMessage",
    "AccessToken",
    "ConversationEntry",
    "EntriesPage",
    "EventEnvelope",
    "EventId",
    "MessagePayload",
    "Participant",
    "ParticipantChange",
    "ParticipantChangedPayload",
    "QueuePositionPayload",
    "RoutingResultPayload",
    "RoutingStatus",
    "Sender",
    "SessionStatusChangedPayload",
    "StaticContent",
    "Choices",
    "decode_entry_payload",
    "parse",
    "parse_json",
]

#: An SSE / token ``lastEventId``: a string on the wire, but a number in some samples.
EventId = NewType("EventId", str)
#: ``entryPayload``: a JSON *string* on SSE, a JSON *object* in the entries list (§3.7).
RawPayload = NewType("RawPayload", object)
#: A nested JSON object we read loosely (attachments, choice items).
JsonObject = NewType("JsonObject", dict[str, Any])

T = TypeVar("T")

log = logging.getLogger("handoff.miaw")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# -- models -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AccessToken:
    """Response of the access-token and continuation-token calls (§2)."""

    access_token: str = attrs.field(repr=False)
    last_event_id: EventId | None = None


@attrs.frozen(kw_only=True)
class Sender:
    role: str
    app_type: str | None = None
    subject: str | None = None


@attrs.frozen(kw_only=True)
class ConversationEntry:
    identifier: str
    entry_type: str
    entry_payload: RawPayload
    sender: Sender | None = None
    sender_display_name: str | None = None
    transcripted_timestamp: int | None = None
    client_timestamp: int | None = None


@attrs.frozen(kw_only=True)
class EventEnvelope:
    """The ``data`` of every conversation event on the SSE stream (§4.4)."""

    conversation_id: str
    conversation_entry: ConversationEntry


@attrs.frozen(kw_only=True)
class EntriesPage:
    """``GET …/conversation/{id}/entries`` (§3.7)."""

    conversation_entries: list[ConversationEntry]


@attrs.frozen(kw_only=True)
class RoutingStatus:
    """``GET …/conversation/{id}`` (§3.8): ROUTED, NEEDS_ROUTING, INITIAL or TRANSFER."""

    routing_status: str


# -- entry payloads (decoded from entryPayload) ---------------------------------------------------


@attrs.frozen(kw_only=True)
class StaticContent:
    format_type: str
    text: str | None = None
    title: str | None = None
    url: str | None = None
    attachments: list[JsonObject] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Choices:
    format_type: str
    text: str | None = None
    option_items: list[JsonObject] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class AbstractMessage:
    message_type: str
    id: str | None = None
    static_content: StaticContent | None = None
    choices: Choices | None = None


@attrs.frozen(kw_only=True)
class MessagePayload:
    abstract_message: AbstractMessage


@attrs.frozen(kw_only=True)
class Participant:
    role: str
    subject: str | None = None


@attrs.frozen(kw_only=True)
class ParticipantChange:
    operation: str
    participant: Participant
    display_name: str | None = None


@attrs.frozen(kw_only=True)
class ParticipantChangedPayload:
    entries: list[ParticipantChange]


@attrs.frozen(kw_only=True)
class RoutingResultPayload:
    """A RoutingResult entry (§4.5); see :func:`_wait_seconds` for the wait-time shapes.

    ``estimated_wait_time`` is the wait in seconds when the server says it is known, else
    ``None``. It is read leniently (never raises), so ``failure_type`` is always read.
    """

    failure_type: str
    routing_type: str | None = None
    failure_reason: str | None = None
    estimated_wait_time: float | None = None


@attrs.frozen(kw_only=True)
class QueuePositionPayload:
    # ``position`` is the SDKs' name (reference §4.5, UNCONFIRMED on the wire).
    position: int | None = None


@attrs.frozen(kw_only=True)
class SessionStatusChangedPayload:
    session_status: str
    session_ended_by_role: str | None = None


# -- the converter --------------------------------------------------------------------------------

converter = cattrs.Converter()


def _wire_name(name: str) -> str:
    return _camel(name)


def _structure_factory(cls: type[Any]) -> Any:
    overrides: dict[str, Any] = {
        a.name: override(rename=_wire_name(a.name)) for a in attrs.fields(cls)
    }
    return make_dict_structure_fn(cls, converter, **overrides)


def _strict(kind: type[Any] | tuple[type[Any], ...], label: str) -> Any:
    def hook(value: object, _: object) -> object:
        # cattrs would happily turn 3 into "3" or "3" into 3: a peer sending the wrong type is
        # broken and should be told so, by field.
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {label}, got a boolean")
        if not isinstance(value, kind):
            raise TypeError(f"expected {label}, got {type(value).__name__}")
        return value

    return hook


def _event_id(value: object, _: object) -> EventId:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"expected an event id (string or integer), got {type(value).__name__}")
    return EventId(str(value))


def _raw_payload(value: object, _: object) -> RawPayload:
    if not isinstance(value, str | dict):
        raise TypeError(f"expected a JSON string or object, got {type(value).__name__}")
    return RawPayload(value)


def _float(value: object, _: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


class _MalformedWait(ValueError):
    pass


_malformed_wait_logged = False


def _seconds(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _MalformedWait(f"{where}: expected a number or null, got {value!r}")
    # A negative number means the wait could not be calculated (iOS SDK).
    return float(value) if value >= 0 else None


def _flag(data: Mapping[str, object], key: str, where: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise _MalformedWait(f"{where}.{key}: expected a boolean or null, got {value!r}")
    return value


def _wait_seconds(data: Mapping[str, object]) -> float | None:
    """The RoutingResult's wait in seconds when known; raises ``_MalformedWait`` on odd shapes.

    Two shapes are accepted (docs/protocol-notes.md): the flat number of the reference
    (``estimatedWaitTime: 120``) and the object Salesforce's SDK model and an independent client
    read (``estimatedWaitTime: {estimatedWaitTimeInSeconds: 120, isEWTRequested: true}``). The
    object's wait is known only if ``isEWTRequested`` is true. A top-level ``isEWTAvailable`` is
    honoured when present (``false`` means unknown) and never required.
    """
    if _flag(data, "isEWTAvailable", "$") is False:
        return None
    raw = data.get("estimatedWaitTime")
    if isinstance(raw, Mapping):
        where = "$.estimatedWaitTime"
        seconds = _seconds(
            raw.get("estimatedWaitTimeInSeconds"), f"{where}.estimatedWaitTimeInSeconds"
        )
        requested = _flag(raw, "isEWTRequested", where)
        return seconds if requested is True else None
    return _seconds(raw, "$.estimatedWaitTime")


converter.register_structure_hook_factory(attrs.has, _structure_factory)
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(bool, _strict(bool, "a boolean"))
converter.register_structure_hook(float, _float)
converter.register_structure_hook(EventId, _event_id)
converter.register_structure_hook(RawPayload, _raw_payload)
converter.register_structure_hook(JsonObject, _strict(dict, "an object"))
# Generated after the scalar hooks above, which it looks up now.
_routing_overrides: dict[str, Any] = {
    a.name: override(rename=_wire_name(a.name)) for a in attrs.fields(RoutingResultPayload)
}
_routing_overrides["estimated_wait_time"] = override(omit=True)  # read by _wait_seconds
_routing_result_fields = make_dict_structure_fn(
    RoutingResultPayload, converter, **_routing_overrides
)


def _routing_result(data: Mapping[str, object], _: object) -> RoutingResultPayload:
    global _malformed_wait_logged
    # Strict for the routing outcome; the wait fields can never make the entry unreadable.
    result: RoutingResultPayload = _routing_result_fields(data, RoutingResultPayload)
    try:
        wait = _wait_seconds(data)
    except _MalformedWait as exc:
        if not _malformed_wait_logged:
            _malformed_wait_logged = True
            log.debug("RoutingResult: wait time ignored (logged once): %s", exc)
        wait = None
    return attrs.evolve(result, estimated_wait_time=wait)


converter.register_structure_hook(RoutingResultPayload, _routing_result)

_SNAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)+")


def _wire_path(message: str) -> str:
    # cattrs names attributes in its paths; the peer knows the wire keys.
    text, at, path = message.rpartition(" @ ")
    if not at:
        return message
    return f"{text} @ {_SNAKE.sub(lambda m: _wire_name(m.group()), path)}"


def parse(data: object, cls: type[T], what: str) -> T:
    """Structure ``data`` into ``cls``; a broken payload raises ``RemoteProtocolError``."""
    if not isinstance(data, Mapping):
        raise RemoteProtocolError(f"{what}: expected a JSON object, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problems = "; ".join(_wire_path(m) for m in cattrs.transform_error(exc, path="$"))
        else:
            problems = str(exc)
        raise RemoteProtocolError(f"{what}: {problems}") from None


def parse_json(text: str | bytes, cls: type[T], what: str) -> T:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RemoteProtocolError(f"{what}: not JSON ({exc})") from None
    return parse(data, cls, what)


def decode_entry_payload(entry: ConversationEntry, cls: type[T]) -> T:
    """Decode ``entryPayload`` (JSON string on SSE, object in the entries list) into ``cls``."""
    raw = entry.entry_payload
    what = f"{entry.entry_type} entry {entry.identifier}: entryPayload"
    if isinstance(raw, str):
        return parse_json(raw, cls, what)
    return parse(raw, cls, what)
