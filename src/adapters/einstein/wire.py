"""Wire models of the Einstein Bots runtime API v5.x (spec: ``specs/einstein-bot-api-v5_3_0.yml``).

Responses are structured by cattrs into frozen attrs classes: unknown fields are tolerated, a
missing or wrong-typed required field raises :class:`RemoteProtocolError` naming it (``$.messages[0]
.id``), and an unknown message ``type`` becomes :class:`UnknownMessage` instead of an error (the
Java SDK throws there, so a new server-side type would break it). Requests are built by small
functions returning plain JSON, with exactly the keys the spec allows (most request schemas say
``additionalProperties: false``).

The simulator parses requests with the same converter (``structure_request``), strictly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

import attrs
import cattrs
from cattrs.errors import CattrsError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from handoff_core.errors import RemoteProtocolError

__all__ = [
    "END_REASONS",
    "SESSION_ENDED_REASONS",
    "TARGET_BOT",
    "TARGET_FLOW",
    "TARGET_QUEUE",
    "TARGET_SKILL",
    "Choice",
    "ChoiceRequest",
    "ChoicesMessage",
    "ContinueEnvelope",
    "ErrorBody",
    "EscalateMessage",
    "InitEnvelope",
    "Referrer",
    "ResponseEnvelope",
    "ResponseMessage",
    "SessionEndedMessage",
    "Target",
    "TextMessage",
    "TextRequest",
    "TransferFailedRequest",
    "TransferSucceededRequest",
    "UnknownMessage",
    "Variable",
    "choice_message",
    "error_body",
    "init_envelope",
    "parse_error",
    "parse_response",
    "response_options",
    "structure_request",
    "text_message",
    "transfer_failed",
    "transfer_succeeded",
]

TARGET_BOT: Final = "Salesforce:Core:Bot:Id"
TARGET_QUEUE: Final = "Salesforce:Core:Queue:Id"
TARGET_SKILL: Final = "Salesforce:Core:Skill:Id"
TARGET_FLOW: Final = "Salesforce:Core:Flow:Id"
REFERRER_SESSION: Final = "Salesforce:BotRuntime:Session:Id"
#: ``X-Session-End-Reason`` values (client side).
END_REASONS: Final = ("UserRequest", "Transfer", "Expiration", "Error", "Other")
#: ``sessionEnded.reason`` values (bot side): a different enum from :data:`END_REASONS`.
SESSION_ENDED_REASONS: Final = (
    "ClientRequest",
    "TransferFailedNotConfigured",
    "Action",
    "Error",
    "InfiniteLoopDetected",
)
VARIABLE_TYPES: Final = (
    "boolean",
    "date",
    "dateTime",
    "money",
    "number",
    "text",
    "object",
    "ref",
    "list",
)

JSON: TypeAlias = Any


# -- responses -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Variable:
    name: str
    type: str
    #: A JSON value: scalar for most types, a list for ``object`` (nested variables) and ``list``.
    value: JSON = None


@attrs.frozen(kw_only=True)
class Choice:
    id: str
    label: str
    alias: str | None = None


@attrs.frozen(kw_only=True)
class Target:
    type: str
    value: str


@attrs.frozen(kw_only=True)
class TextMessage:
    id: str
    text: str
    type: Literal["text"] = "text"


@attrs.frozen(kw_only=True)
class ChoicesMessage:
    id: str
    choices: tuple[Choice, ...]
    widget: str | None = None
    type: Literal["choices"] = "choices"


@attrs.frozen(kw_only=True)
class EscalateMessage:
    id: str
    targets: tuple[Target, ...] = ()
    type: Literal["escalate"] = "escalate"


@attrs.frozen(kw_only=True)
class SessionEndedMessage:
    id: str
    reason: str
    type: Literal["sessionEnded"] = "sessionEnded"


@attrs.frozen(kw_only=True)
class UnknownMessage:
    """A message type this client does not know (tolerated, logged, skipped)."""

    type: str
    id: str | None = None


ResponseMessage: TypeAlias = (
    TextMessage | ChoicesMessage | EscalateMessage | SessionEndedMessage | UnknownMessage
)


@attrs.frozen(kw_only=True)
class ResponseEnvelope:
    """``ResponseEnvelope`` (start) and ``ChatMessageResponseEnvelope`` (continue, end)."""

    messages: tuple[ResponseMessage, ...]
    session_id: str | None = None
    bot_version: str | None = None
    processed_sequence_ids: tuple[int, ...] = ()
    variables: tuple[Variable, ...] | None = None


@attrs.frozen(kw_only=True)
class ErrorBody:
    status: int | None = None
    error: str | None = None
    message: str | None = None
    request_id: str | None = None


# -- requests (parsed by the simulator) ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ForceConfig:
    endpoint: str


@attrs.frozen(kw_only=True)
class InitText:
    text: str | None = None


@attrs.frozen(kw_only=True)
class Referrer:
    type: str
    value: str


@attrs.frozen(kw_only=True)
class ResponseOptionsVariables:
    include: bool
    only_changed: bool
    filter: tuple[str, ...] | None = None


@attrs.frozen(kw_only=True)
class ResponseOptions:
    variables: ResponseOptionsVariables | None = None
    metrics: bool | None = None
    intents: bool | None = None
    entities: bool | None = None


@attrs.frozen(kw_only=True)
class InitEnvelope:
    external_session_key: str
    force_config: ForceConfig
    message: InitText | None = None
    response_options: ResponseOptions | None = None
    tz: str | None = None
    variables: tuple[Variable, ...] | None = None
    referrers: tuple[Referrer, ...] | None = None


@attrs.frozen(kw_only=True)
class TextRequest:
    sequence_id: int
    text: str
    in_reply_to_message_id: str | None = None
    type: Literal["text"] = "text"


@attrs.frozen(kw_only=True)
class ChoiceRequest:
    sequence_id: int
    choice_id: str | None = None
    choice_index: int | None = None
    in_reply_to_message_id: str | None = None
    type: Literal["choice"] = "choice"


@attrs.frozen(kw_only=True)
class TransferSucceededRequest:
    sequence_id: int
    in_reply_to_message_id: str | None = None
    type: Literal["transferSucceeded"] = "transferSucceeded"


@attrs.frozen(kw_only=True)
class TransferFailedRequest:
    sequence_id: int
    reason: Literal["NoAgentAvailable", "Error"]
    description: str | None = None
    in_reply_to_message_id: str | None = None
    type: Literal["transferFailed"] = "transferFailed"


@attrs.frozen(kw_only=True)
class RedirectRequest:
    sequence_id: int
    dialog_id: str
    type: Literal["redirect"] = "redirect"


@attrs.frozen(kw_only=True)
class SetVariablesRequest:
    sequence_id: int
    variables: tuple[Variable, ...]
    type: Literal["setVariables"] = "setVariables"


RequestMessage: TypeAlias = (
    TextRequest
    | ChoiceRequest
    | TransferSucceededRequest
    | TransferFailedRequest
    | RedirectRequest
    | SetVariablesRequest
)


@attrs.frozen(kw_only=True)
class ContinueEnvelope:
    message: RequestMessage
    response_options: ResponseOptions | None = None


# -- the converters --------------------------------------------------------------------------------

_CAMEL: Final = re.compile(r"_([a-z])")
_WIRE_NAMES: Final = {"links": "_links"}


def _camel(name: str) -> str:
    return _WIRE_NAMES.get(name) or _CAMEL.sub(lambda m: m.group(1).upper(), name)


def _strict_scalar(kind: type, label: str) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        # cattrs would call str(5) or int("5"): a peer sending the wrong type must be told so.
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise TypeError(f"expected {label}, got {type(value).__name__}")
        return value

    return structure


def _json_value(value: Any, _: type) -> Any:
    return value


def _is_tuple(cls: Any) -> bool:
    return getattr(cls, "__origin__", None) is tuple


def _strict_tuple(converter: cattrs.Converter, cls: Any) -> Callable[[Any, type], Any]:
    item = cls.__args__[0]

    def structure(value: Any, _: type) -> Any:
        # cattrs would iterate a string or an object's keys: only a JSON array is an array here.
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        result, errors = [], []
        for index, element in enumerate(value):
            try:
                result.append(converter.structure(element, item))
            except Exception as exc:  # collected like cattrs does, so the path shows the index
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(f"Structuring @ index {index}", index, item),
                ]
                errors.append(exc)
        if errors:
            raise cattrs.IterableValidationError("While structuring an array", errors, cls)
        return tuple(result)

    return structure


def _make_converter(*, forbid_extra_keys: bool) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=forbid_extra_keys)
    converter.register_structure_hook(str, _strict_scalar(str, "a string"))
    converter.register_structure_hook(int, _strict_scalar(int, "an integer"))
    converter.register_structure_hook(bool, _strict_scalar(bool, "a boolean"))
    converter.register_structure_hook(Any, _json_value)
    converter.register_structure_hook_factory(_is_tuple, lambda cls: _strict_tuple(converter, cls))

    def camel_fields(cls: type) -> Callable[[Any, type], Any]:
        renames: dict[str, Any] = {
            a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)
        }
        renames["_cattrs_forbid_extra_keys"] = forbid_extra_keys
        return make_dict_structure_fn(cls, converter, **renames)

    converter.register_structure_hook_factory(attrs.has, camel_fields)
    return converter


_RESPONSES: Final = _make_converter(forbid_extra_keys=False)
# The spec sets ``additionalProperties: false`` on request envelopes: the simulator refuses extras.
_REQUESTS: Final = _make_converter(forbid_extra_keys=True)

_MESSAGE_TYPES: Final[dict[str, type]] = {
    "text": TextMessage,
    "choices": ChoicesMessage,
    "escalate": EscalateMessage,
    "sessionEnded": SessionEndedMessage,
}


def _structure_message(value: Any, _: type) -> ResponseMessage:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise TypeError("type: expected a string")
    cls = _MESSAGE_TYPES.get(kind)
    if cls is None:
        message_id = value.get("id")
        return UnknownMessage(type=kind, id=message_id if isinstance(message_id, str) else None)
    result: ResponseMessage = _RESPONSES.structure(value, cls)
    return result


_RESPONSES.register_structure_hook(ResponseMessage, _structure_message)

_REQUEST_TYPES: Final[dict[str, type]] = {
    "text": TextRequest,
    "choice": ChoiceRequest,
    "transferSucceeded": TransferSucceededRequest,
    "transferFailed": TransferFailedRequest,
    "redirect": RedirectRequest,
    "setVariables": SetVariablesRequest,
}


def _structure_request_message(value: Any, _: type) -> RequestMessage:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    kind = value.get("type")
    cls = _REQUEST_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"type: expected one of {sorted(_REQUEST_TYPES)}, got {kind!r}")
    result: RequestMessage = _REQUESTS.structure(value, cls)
    return result


_REQUESTS.register_structure_hook(RequestMessage, _structure_request_message)

T = TypeVar("T")


def _describe(exc: BaseException, cls: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unexpected field(s) {sorted(exc.extra_fields)}"
    if isinstance(exc, TypeError | ValueError | CattrsError) and str(exc):
        return str(exc)
    return f"invalid value ({type(exc).__name__})"


def _wire_path(line: str) -> str:
    # cattrs names attributes as Python spells them; a peer knows the wire names (camelCase).
    message, at, path = line.rpartition(" @ ")
    if not at:
        return line
    return message + at + re.sub(r"\.(\w+)", lambda m: "." + _camel(m.group(1)), path)


def _structure(converter: cattrs.Converter, data: Any, cls: type[T], what: str) -> T:
    try:
        result: T = converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(
                _wire_path(line)
                for line in cattrs.transform_error(exc, path="$", format_exception=_describe)
            )
        else:
            details = str(exc)
        raise RemoteProtocolError(f"Einstein {what}: {details}") from None
    return result


def parse_response(data: Any) -> ResponseEnvelope:
    """Structure a 200 response body (start, continue or end)."""
    if not isinstance(data, Mapping):
        raise RemoteProtocolError(
            f"Einstein response: expected a JSON object, got {type(data).__name__}"
        )
    return _structure(_RESPONSES, data, ResponseEnvelope, "response")


def parse_error(data: Any) -> ErrorBody:
    """Structure an error body leniently (any shape: it only feeds error messages)."""
    if not isinstance(data, Mapping):
        return ErrorBody()
    try:
        return _RESPONSES.structure(data, ErrorBody)
    except (cattrs.BaseValidationError, ValueError, TypeError):
        return ErrorBody()


def structure_request(data: Any, cls: type[T]) -> T:
    """Structure a request body strictly (the simulator's view of what a client sent)."""
    if not isinstance(data, Mapping):
        raise RemoteProtocolError(
            f"Einstein request: expected a JSON object, got {type(data).__name__}"
        )
    return _structure(_REQUESTS, data, cls, "request")


# -- request builders ------------------------------------------------------------------------------


def response_options(
    *, include_variables: bool, variable_filter: Sequence[str] | None = None
) -> dict[str, JSON]:
    variables: dict[str, JSON] = {"include": include_variables, "onlyChanged": False}
    if variable_filter:
        variables["filter"] = list(variable_filter)
    return {"variables": variables}


def init_envelope(
    *,
    external_session_key: str,
    force_endpoint: str,
    text: str | None,
    variables: Sequence[Mapping[str, JSON]] = (),
    referrers: Sequence[Referrer] = (),
    tz: str | None = None,
    options: Mapping[str, JSON] | None = None,
) -> dict[str, JSON]:
    """An ``InitMessageEnvelope``: the init message is only ``{text}`` (no type, no sequenceId)."""
    body: dict[str, JSON] = {
        "externalSessionKey": external_session_key,
        "forceConfig": {"endpoint": force_endpoint},
    }
    if text is not None:
        body["message"] = {"text": text}
    if tz is not None:
        body["tz"] = tz
    if variables:
        body["variables"] = [dict(v) for v in variables]
    if referrers:
        body["referrers"] = [{"type": r.type, "value": r.value} for r in referrers]
    if options is not None:
        body["responseOptions"] = dict(options)
    return body


def _envelope(message: dict[str, JSON], options: Mapping[str, JSON] | None) -> dict[str, JSON]:
    body: dict[str, JSON] = {"message": message}
    if options is not None:
        body["responseOptions"] = dict(options)
    return body


def text_message(
    sequence_id: int, text: str, *, options: Mapping[str, JSON] | None = None
) -> dict[str, JSON]:
    return _envelope({"type": "text", "sequenceId": sequence_id, "text": text}, options)


def choice_message(
    sequence_id: int,
    choice_id: str,
    *,
    in_reply_to: str | None = None,
    options: Mapping[str, JSON] | None = None,
) -> dict[str, JSON]:
    message: dict[str, JSON] = {"type": "choice", "sequenceId": sequence_id, "choiceId": choice_id}
    if in_reply_to is not None:
        message["inReplyToMessageId"] = in_reply_to
    return _envelope(message, options)


def transfer_succeeded(sequence_id: int, *, in_reply_to: str | None) -> dict[str, JSON]:
    message: dict[str, JSON] = {"type": "transferSucceeded", "sequenceId": sequence_id}
    if in_reply_to is not None:
        message["inReplyToMessageId"] = in_reply_to
    return _envelope(message, None)


def transfer_failed(
    sequence_id: int,
    *,
    reason: Literal["NoAgentAvailable", "Error"],
    description: str,
    in_reply_to: str | None,
    options: Mapping[str, JSON] | None = None,
) -> dict[str, JSON]:
    message: dict[str, JSON] = {
        "type": "transferFailed",
        "sequenceId": sequence_id,
        "reason": reason,
        "description": description,
    }
    if in_reply_to is not None:
        message["inReplyToMessageId"] = in_reply_to
    return _envelope(message, options)


def error_body(
    status: int, error: str, message: str, *, path: str, request_id: str, timestamp_ms: int
) -> dict[str, JSON]:
    """The spec's ``Error`` schema (all six fields required)."""
    return {
        "status": status,
        "path": path,
        "requestId": request_id,
        "error": error,
        "message": message,
        "timestamp": timestamp_ms,
    }
