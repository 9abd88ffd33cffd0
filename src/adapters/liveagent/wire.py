"""Wire models of the Live Agent (legacy Chat REST API) JSON, structured with cattrs.

Every payload from the server is structured into a frozen attrs class here before anything else
looks at it: unknown fields are tolerated, a missing or wrong-typed required field raises
:class:`~handoff_core.errors.RemoteProtocolError` naming the field (``$.messages[0].type``).
Python names are snake_case; the JSON name travels in the field metadata (``wire``).

Request bodies we send are built here too, so the adapter and the simulator share one spelling
of every key (see ``../shared/protocols/liveagent.md`` §3).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.v import format_exception

from handoff_core.errors import RemoteProtocolError

__all__ = [
    "MAX_BODY_BYTES",
    "AvailabilityResult",
    "ChasitorInit",
    "ChasitorSessionData",
    "ChatEnded",
    "ChatEstablished",
    "ChatMessage",
    "ChatRequestFail",
    "ChatRequestSuccess",
    "ChatTransferred",
    "CustomDetail",
    "EntityFieldsMap",
    "Entity",
    "Message",
    "Messages",
    "QueueUpdate",
    "ReconnectSession",
    "SessionId",
    "SwitchServer",
    "decode_json",
    "parse_availability",
    "parse_messages",
    "parse_payload",
    "parse_reconnect",
    "parse_session_id",
    "structure",
]

#: Largest response body we accept from the server (a Messages batch is a few KiB at most).
MAX_BODY_BYTES: Final = 1024 * 1024

T = TypeVar("T")


def _wire(name: str, **kwargs: Any) -> Any:
    """An attrs field whose JSON key is ``name``."""
    metadata = dict(kwargs.pop("metadata", {}))
    metadata["wire"] = name
    return attrs.field(metadata=metadata, **kwargs)


# -- the converter: strict scalars, renamed keys ---------------------------------------------------


def _strict_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _strict_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _object(value: object, _: type) -> Mapping[str, Any]:
    if value is None:
        return {}  # field-less types may send null (UNCONFIRMED, §6.5): treat as {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


converter = cattrs.Converter(forbid_extra_keys=False)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook(float, _strict_float)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook_func(lambda type_: type_ == Mapping[str, Any], _object)


def _renaming_hook(cls: type[Any]) -> Any:
    renames: dict[str, Any] = {
        field.name: override(rename=field.metadata["wire"])
        for field in attrs.fields(cls)
        if "wire" in field.metadata
    }
    return make_dict_structure_fn(cls, converter, **renames)


converter.register_structure_hook_factory(attrs.has, _renaming_hook)


def _is_homogeneous_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _array_hook(type_: Any) -> Any:
    item_type = get_args(type_)[0]

    def structure_array(value: object, _: type) -> tuple[Any, ...]:
        # cattrs would happily iterate a string or an object's keys: insist on a JSON array.
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(converter.structure(item, item_type))
            except cattrs.BaseValidationError as exc:
                details = "; ".join(
                    cattrs.transform_error(exc, path=f"[{index}]", format_exception=_describe)
                )
                raise _ItemError(details) from None
            except (TypeError, ValueError, KeyError) as exc:
                raise _ItemError(f"invalid value: {exc} @ [{index}]") from None
        return tuple(items)

    return structure_array


converter.register_structure_hook_factory(_is_homogeneous_tuple, _array_hook)


class _ItemError(TypeError):
    """An array item failed; its message already says where and why."""


def _describe(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _ItemError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError) and str(exc):
        return f"invalid value: {exc}"
    return format_exception(exc, type_)


def structure(data: object, cls: type[T], where: str) -> T:
    """Structure ``data`` into ``cls``; any mismatch is the server's fault."""
    if not isinstance(data, Mapping):
        raise RemoteProtocolError(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(
                cattrs.transform_error(exc, path=f"{where} $", format_exception=_describe)
            )
        else:
            details = f"{where}: {exc}"
        raise RemoteProtocolError(f"malformed response: {details}") from None


def decode_json(body: bytes, where: str) -> object:
    """Parse a response body; a non-JSON or oversized body is the server's fault."""
    if len(body) > MAX_BODY_BYTES:
        raise RemoteProtocolError(f"{where}: response body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RemoteProtocolError(f"{where}: response body is not JSON ({exc})") from None


# -- responses ------------------------------------------------------------------------------------


def _lenient_seconds(value: object) -> int:
    # The docs' example sends clientPollTimeout as the string "30" though the table says integer.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer number of seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class SessionId:
    """``GET System/SessionId`` → the new session's credentials."""

    id: str
    key: str = attrs.field(repr=False)  # the bearer credential of the chat: never logged
    affinity_token: str = _wire("affinityToken", repr=False)
    client_poll_timeout: Any = _wire("clientPollTimeout", default=30)  # noqa: RUF009

    @property
    def poll_timeout(self) -> int:
        return _lenient_seconds(self.client_poll_timeout)


@attrs.frozen(kw_only=True)
class Message:
    """One element of ``messages[]``: its ``type`` and the raw ``message`` object."""

    type: str
    message: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Messages:
    """A ``System/Messages`` 200 response: a batch, its sequence (the next ``ack``) and offset."""

    messages: tuple[Message, ...]
    sequence: int
    offset: int | None = None


@attrs.frozen(kw_only=True)
class ChatRequestSuccess:
    queue_position: int | None = _wire("queuePosition", default=None)
    estimated_wait_time: float | None = _wire("estimatedWaitTime", default=None)
    visitor_id: str | None = _wire("visitorId", default=None)


@attrs.frozen(kw_only=True)
class ChatRequestFail:
    reason: str = "Unknown"


@attrs.frozen(kw_only=True)
class ChatEstablished:
    name: str = ""
    user_id: str | None = _wire("userId", default=None)
    sneak_peek_enabled: bool | None = _wire("sneakPeekEnabled", default=None)


@attrs.frozen(kw_only=True)
class ChatMessage:
    text: str
    name: str = ""


@attrs.frozen(kw_only=True)
class QueueUpdate:
    position: int | None = None
    estimated_wait_time: float | None = _wire("estimatedWaitTime", default=None)


@attrs.frozen(kw_only=True)
class ChatTransferred:
    name: str = ""
    user_id: str | None = _wire("userId", default=None)


@attrs.frozen(kw_only=True)
class ChatEnded:
    reason: str = "unknown"


@attrs.frozen(kw_only=True)
class ChasitorSessionData:
    queue_position: int | None = _wire("queuePosition", default=None)


@attrs.frozen(kw_only=True)
class ReconnectSession:
    affinity_token: str = _wire("affinityToken", repr=False)
    #: "always set to true", "may be undefined" (§3.10): absent means reset.
    reset_sequence: bool | None = _wire("resetSequence", default=None)


@attrs.frozen(kw_only=True)
class AvailabilityResult:
    id: str
    #: "If you don't see this property, the value is false."
    is_available: bool = _wire("isAvailable", default=False)
    estimated_wait_time: float | None = _wire("estimatedWaitTime", default=None)


@attrs.frozen(kw_only=True)
class Availability:
    results: tuple[AvailabilityResult, ...] = ()


@attrs.frozen(kw_only=True)
class SwitchServer:
    new_url: str = _wire("newUrl")


#: Message types whose payload we read, and the class each is structured into.
PAYLOADS: Final[dict[str, type[Any]]] = {
    "ChatRequestSuccess": ChatRequestSuccess,
    "ChatRequestFail": ChatRequestFail,
    "ChatEstablished": ChatEstablished,
    "ChatMessage": ChatMessage,
    "QueueUpdate": QueueUpdate,
    "ChatTransferred": ChatTransferred,
    "ChatEnded": ChatEnded,
    "ChasitorSessionData": ChasitorSessionData,
    "ReconnectSession": ReconnectSession,
    "Availability": Availability,
    "SwitchServer": SwitchServer,
}


def parse_session_id(data: object) -> SessionId:
    session = structure(data, SessionId, "System/SessionId")
    try:
        session.poll_timeout  # noqa: B018 - validates the lenient field now, not on first use
    except TypeError as exc:
        raise RemoteProtocolError(
            f"malformed response: System/SessionId $.clientPollTimeout: {exc}"
        ) from None
    return session


def parse_messages(data: object) -> Messages:
    return structure(data, Messages, "System/Messages")


def parse_payload(message: Message, where: str) -> Any:
    """The typed payload of a known message type (``None`` for field-less or ignored types)."""
    cls = PAYLOADS.get(message.type)
    if cls is None:
        return None
    return structure(message.message, cls, f"{where} {message.type}")


def _first_of(data: object, type_name: str, where: str) -> Mapping[str, Any] | None:
    envelope = structure(data, _Envelope, where)
    for message in envelope.messages:
        if message.type == type_name:
            return message.message
    return None


@attrs.frozen(kw_only=True)
class _Envelope:
    messages: tuple[Message, ...] = ()


def parse_reconnect(data: object) -> ReconnectSession:
    where = "System/ReconnectSession"
    payload = _first_of(data, "ReconnectSession", where)
    if payload is None:
        raise RemoteProtocolError(f"malformed response: {where}: no ReconnectSession message")
    return structure(payload, ReconnectSession, f"{where} ReconnectSession")


def parse_availability(data: object) -> Availability | SwitchServer:
    """``Visitor/Availability``: the results, or where the org moved to (``SwitchServer``)."""
    where = "Visitor/Availability"
    if isinstance(data, Mapping) and "results" in data and "messages" not in data:
        return structure(data, Availability, where)  # the bare form the docs' schema shows
    switch = _first_of(data, "SwitchServer", where)
    if switch is not None:
        return structure(switch, SwitchServer, f"{where} SwitchServer")
    payload = _first_of(data, "Availability", where)
    if payload is None:
        raise RemoteProtocolError(f"malformed response: {where}: no Availability message")
    return structure(payload, Availability, f"{where} Availability")


# -- requests -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CustomDetail:
    """A pre-chat detail shown to the agent and optionally saved to transcript fields."""

    label: str
    value: str
    transcript_fields: tuple[str, ...] = _wire("transcriptFields", default=())
    display_to_agent: bool = _wire("displayToAgent", default=True)

    def to_wire(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            # Salesforce's own SDK always sends an empty entityMaps; records are found or
            # created through prechatEntities instead (§3.2, the safe choice).
            "entityMaps": [],
            "transcriptFields": list(self.transcript_fields),
            "displayToAgent": self.display_to_agent,
        }


@attrs.frozen(kw_only=True)
class EntityFieldsMap:
    field_name: str = _wire("fieldName")
    label: str
    do_find: bool = _wire("doFind", default=True)
    is_exact_match: bool = _wire("isExactMatch", default=True)
    do_create: bool = _wire("doCreate", default=False)

    def to_wire(self) -> dict[str, Any]:
        return {
            "fieldName": self.field_name,
            "label": self.label,
            "doFind": self.do_find,
            "isExactMatch": self.is_exact_match,
            "doCreate": self.do_create,
        }


@attrs.frozen(kw_only=True)
class Entity:
    entity_name: str = _wire("entityName")
    entity_fields_maps: tuple[EntityFieldsMap, ...] = _wire("entityFieldsMaps")
    show_on_create: bool = _wire("showOnCreate", default=False)
    save_to_transcript: str | None = _wire("saveToTranscript", default=None)
    link_to_entity_name: str | None = _wire("linkToEntityName", default=None)
    link_to_entity_field: str | None = _wire("linkToEntityField", default=None)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "entityName": self.entity_name,
            "showOnCreate": self.show_on_create,
            "entityFieldsMaps": [m.to_wire() for m in self.entity_fields_maps],
        }
        for key, value in (
            ("saveToTranscript", self.save_to_transcript),
            ("linkToEntityName", self.link_to_entity_name),
            ("linkToEntityField", self.link_to_entity_field),
        ):
            if value is not None:
                body[key] = value
        return body


@attrs.frozen(kw_only=True)
class ChasitorInit:
    """The ``Chasitor/ChasitorInit`` body (§3.2). The simulator structures what it receives into
    this class too, so a request the adapter builds is one the simulator accepts."""

    organization_id: str = _wire("organizationId")
    deployment_id: str = _wire("deploymentId")
    button_id: str = _wire("buttonId")
    session_id: str = _wire("sessionId")
    user_agent: str = _wire("userAgent")
    language: str
    screen_resolution: str = _wire("screenResolution")
    visitor_name: str = _wire("visitorName")
    prechat_details: tuple[CustomDetail, ...] = _wire("prechatDetails", default=())
    prechat_entities: tuple[Entity, ...] = _wire("prechatEntities", default=())
    button_overrides: tuple[str, ...] = _wire("buttonOverrides", default=())
    receive_queue_updates: bool = _wire("receiveQueueUpdates", default=True)
    is_post: bool = _wire("isPost", default=True)

    def to_wire(self) -> dict[str, Any]:
        return {
            "organizationId": self.organization_id,
            "deploymentId": self.deployment_id,
            "buttonId": self.button_id,
            "sessionId": self.session_id,
            "userAgent": self.user_agent,
            "language": self.language,
            "screenResolution": self.screen_resolution,
            "visitorName": self.visitor_name,
            "prechatDetails": [d.to_wire() for d in self.prechat_details],
            "prechatEntities": [e.to_wire() for e in self.prechat_entities],
            "buttonOverrides": list(self.button_overrides),
            "receiveQueueUpdates": self.receive_queue_updates,
            "isPost": self.is_post,
        }


def messages_body(
    messages: Sequence[tuple[str, Mapping[str, Any]]], sequence: int, offset: int
) -> dict[str, Any]:
    """A ``System/Messages`` 200 body (used by the simulator)."""
    return {
        "messages": [{"type": kind, "message": dict(payload)} for kind, payload in messages],
        "sequence": sequence,
        "offset": offset,
    }
