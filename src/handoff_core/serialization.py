"""Plain-data form of conversations (and events/effects) for stores, with cattrs.

``unstructure_conversation`` gives JSON-ready dicts (enums as values, tuples as lists, effects
tagged with their class name); ``structure_conversation`` rebuilds an equal record. Malformed stored
data raises :class:`~handoff_core.errors.LocalProtocolError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cattrs
from cattrs.strategies import configure_tagged_union

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import LocalProtocolError

__all__ = [
    "converter",
    "structure_conversation",
    "structure_event",
    "unstructure_conversation",
    "unstructure_event",
]

#: Bumped when the stored shape changes incompatibly.
SCHEMA_VERSION = 1

EFFECT_TYPES: tuple[type[fx.Effect], ...] = (
    fx.DeliverToUser,
    fx.SetUserTyping,
    fx.ForwardToBot,
    fx.StartBotSession,
    fx.ReportTransferOutcome,
    fx.CheckAgentAvailability,
    fx.OpenAgentSession,
    fx.ForwardToAgent,
    fx.SetAgentTyping,
    fx.CloseAgentSession,
    fx.ScheduleTimer,
    fx.CancelTimer,
)


def _scalar_mapping(value: Any, _: Any) -> dict[str, ev.Scalar]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return dict(value)


def _is_scalar_mapping(tp: Any) -> bool:
    origin = getattr(tp, "__origin__", None)
    if origin is None:
        # Optional[Mapping[...]] is a Union; handle the Mapping part only.
        return False
    return origin is Mapping or (origin is dict and tp.__args__[0] is str)


def _is_optional_scalar_mapping(tp: Any) -> bool:
    args = getattr(tp, "__args__", ())
    return (
        len(args) == 2
        and type(None) in args
        and any(_is_scalar_mapping(arg) for arg in args if arg is not type(None))
    )


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    # Flat JSON scalar mappings (cursors, variables, pre-chat, params): kept as they are.
    conv.register_structure_hook_func(_is_scalar_mapping, _scalar_mapping)
    conv.register_structure_hook_func(
        _is_optional_scalar_mapping, lambda v, t: None if v is None else _scalar_mapping(v, t)
    )
    effects_union = _union(EFFECT_TYPES)
    configure_tagged_union(
        effects_union, conv, tag_name="type", tag_generator=lambda cls: cls.__name__
    )
    # Outbox fields are typed with the base class: dispatch on the runtime class instead.
    conv.register_structure_hook_func(
        lambda tp: tp is fx.Effect, lambda value, _: conv.structure(value, effects_union)
    )
    conv.register_unstructure_hook_func(
        lambda tp: tp is fx.Effect, lambda value: conv.unstructure(value, effects_union)
    )
    event_types = tuple(ev.EVENT_TYPES.values())
    configure_tagged_union(
        _union(event_types), conv, tag_name="type", tag_generator=lambda cls: cls.__name__
    )
    return conv


def _union(types: tuple[type[Any], ...]) -> Any:
    union: Any = types[0]
    for cls in types[1:]:
        union = union | cls
    return union


converter = _make_converter()


def unstructure_conversation(conversation: Conversation) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(conversation)
    data["schema"] = SCHEMA_VERSION
    return data


def structure_conversation(data: Mapping[str, Any]) -> Conversation:
    payload = dict(data)
    schema = payload.pop("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise LocalProtocolError(
            f"stored conversation has schema {schema!r}; this version reads {SCHEMA_VERSION}"
        )
    try:
        return converter.structure(payload, Conversation)
    except Exception as exc:  # cattrs raises ClassValidationError groups with per-field detail
        raise LocalProtocolError(f"stored conversation is malformed: {_describe(exc)}") from exc


def unstructure_event(event: ev.Event) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(event, _union(tuple(ev.EVENT_TYPES.values())))
    return data


def structure_event(data: Mapping[str, Any]) -> ev.Event:
    try:
        event: ev.Event = converter.structure(dict(data), _union(tuple(ev.EVENT_TYPES.values())))
    except LocalProtocolError:
        raise
    except Exception as exc:
        raise LocalProtocolError(f"malformed event: {_describe(exc)}") from exc
    return event


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc)
        return "; ".join(messages)
    return str(exc)
