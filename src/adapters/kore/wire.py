"""Wire models of the Kore.ai XO Platform → BotKit webhook payloads (see ``protocols/kore.md`` §4).

Only the fields this adapter reads are modelled; every other field is tolerated and ignored. A
field of the wrong type raises :class:`~handoff_core.errors.RemoteProtocolError` naming its path
(``$.context.session.BotUserSession.miawMetaInfo.preChatInfo``): the converter is strict, it never
turns ``5`` into ``"5"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from handoff_core.errors import RemoteProtocolError
from handoff_core.events import EscalationTarget, Scalar

#: Quote characters stripped around a configured keyword (straight and typographic).
_QUOTES: Final = "\"'\u201c\u201d\u2018\u2019"

__all__ = [
    "EVENT_NAMES",
    "RECENT_MESSAGES_KEPT",
    "RECENT_MESSAGES_KEY",
    "KoreCallbacks",
    "Webhook",
    "channel_cursor",
    "parse_webhook",
    "recent_message_ids",
]

#: The events a BotKit endpoint accepts here (``on_webhook``/``on_alert``/``on_variable_update``
#: need features a handoff service has no use for).
EVENT_NAMES: Final = frozenset(
    {"on_user_message", "on_bot_message", "on_agent_transfer", "on_event"}
)


@attrs.frozen(kw_only=True)
class ChannelInfos:
    from_: str | None = None
    type: str | None = None


@attrs.frozen(kw_only=True)
class Channel:
    from_: str | None = None
    type: str | None = None
    channelInfos: ChannelInfos | None = None


@attrs.frozen(kw_only=True)
class HandoffTarget:
    """``BotUserSession.handoffTargets[]``: where a Script node wants the transfer routed (ours)."""

    kind: str
    value: str


@attrs.frozen(kw_only=True)
class MiawMetaInfo:
    preChatInfo: dict[str, Any] | None = None
    endChatShortHandCommand: str | None = None


@attrs.frozen(kw_only=True)
class BotUserSession:
    miawMetaInfo: MiawMetaInfo | None = None
    handoffTargets: list[HandoffTarget] | None = None


@attrs.frozen(kw_only=True)
class UserContext:
    id_: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    emailId: str | None = None


@attrs.frozen(kw_only=True)
class SessionOpts:
    userId: str | None = None


@attrs.frozen(kw_only=True)
class Session:
    UserContext: UserContext | None = None
    BotUserSession: BotUserSession | None = None
    opts: SessionOpts | None = None


@attrs.frozen(kw_only=True)
class Context:
    session: Session | None = None


@attrs.frozen(kw_only=True)
class EventInfo:
    eventType: str | None = None


@attrs.frozen(kw_only=True)
class Webhook:
    """One webhook body (``OnMessagePayload`` / ``OnAgentTransferPayload`` / ``OnEventPayload``)."""

    requestId: str | None = None
    message: str | None = None
    context: Context | None = None
    channel: Channel | None = None
    baseUrl: str | None = None
    sendUserMessageUrl: str | None = None
    sendBotMessageUrl: str | None = None
    callbackUrl: str | None = None
    agent_transfer: bool = False
    event: EventInfo | None = None

    # -- derived views ----------------------------------------------------------------------------

    @property
    def user_id(self) -> str | None:
        """The visitor: ``channel.channelInfos.from`` falling back to ``channel.from`` (K1)."""
        channel = self.channel
        if channel is not None:
            if channel.channelInfos is not None and channel.channelInfos.from_:
                return channel.channelInfos.from_
            if channel.from_:
                return channel.from_
        session = self.context.session if self.context else None
        if session is not None:
            if session.opts is not None and session.opts.userId:
                return session.opts.userId
            if session.UserContext is not None and session.UserContext.id_:
                return session.UserContext.id_
        return None

    @property
    def channel_type(self) -> str | None:
        channel = self.channel
        if channel is None:
            return None
        if channel.channelInfos is not None and channel.channelInfos.type:
            return channel.channelInfos.type
        return channel.type

    @property
    def user_context(self) -> UserContext | None:
        session = self.context.session if self.context else None
        return session.UserContext if session else None

    @property
    def bot_user_session(self) -> BotUserSession | None:
        session = self.context.session if self.context else None
        return session.BotUserSession if session else None

    def user_name(self) -> str | None:
        user = self.user_context
        if user is None:
            return None
        name = " ".join(part for part in (user.firstName, user.lastName) if part)
        return name or None

    def identity(self) -> dict[str, Scalar]:
        """The user's identity from ``UserContext``, as variables handed to the agent."""
        user = self.user_context
        found: dict[str, Scalar] = {}
        if self.user_id:
            found["kore.userId"] = self.user_id
        if user is not None:
            for key, value in (
                ("kore.firstName", user.firstName),
                ("kore.lastName", user.lastName),
                ("kore.email", user.emailId),
            ):
                if value:
                    found[key] = value
        return found

    def prechat(self) -> dict[str, Scalar]:
        """``BotUserSession.miawMetaInfo.preChatInfo``: flat JSON scalars only."""
        session = self.bot_user_session
        meta = session.miawMetaInfo if session else None
        if meta is None or not meta.preChatInfo:
            return {}
        values: dict[str, Scalar] = {}
        for key, value in meta.preChatInfo.items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise RemoteProtocolError(
                    "invalid value for type, expected a JSON scalar "
                    f"@ $.context.session.BotUserSession.miawMetaInfo.preChatInfo.{key}"
                )
            values[key] = value
        return values

    def end_keyword(self) -> str | None:
        session = self.bot_user_session
        meta = session.miawMetaInfo if session else None
        if meta is None or meta.endChatShortHandCommand is None:
            return None
        # Kore's own sample carries a stray typographic quote ("“endagentchat"): strip quotes.
        keyword = meta.endChatShortHandCommand.strip().strip(_QUOTES).strip()
        return keyword or None

    def targets(self) -> tuple[EscalationTarget, ...]:
        session = self.bot_user_session
        if session is None or not session.handoffTargets:
            return ()
        found = []
        for index, target in enumerate(session.handoffTargets):
            if not target.kind or not target.value:
                raise RemoteProtocolError(
                    "expected non-empty kind and value "
                    f"@ $.context.session.BotUserSession.handoffTargets[{index}]"
                )
            found.append(EscalationTarget(kind=target.kind, value=target.value))
        return tuple(found)


@attrs.frozen(kw_only=True)
class KoreCallbacks:
    """Where to answer one conversation: the ids and URLs of one platform request.

    Stored flat and JSON-ready, as the bot cursor (bot-side webhooks) or the channel cursor
    (``on_user_message``), so any process can answer later. ``received_at`` (our clock when the
    webhook arrived) says which of the two is the fresher address.
    """

    bot_id: str
    request_id: str
    user_id: str
    channel: str | None
    base_url: str | None
    send_user_message_url: str | None
    send_bot_message_url: str | None
    received_at: float = 0.0

    def to_cursor(self) -> dict[str, Scalar]:
        return {
            "kore.botId": self.bot_id,
            "kore.requestId": self.request_id,
            "kore.userId": self.user_id,
            "kore.channel": self.channel,
            "kore.baseUrl": self.base_url,
            "kore.sendUserMessageUrl": self.send_user_message_url,
            "kore.sendBotMessageUrl": self.send_bot_message_url,
            "kore.receivedAt": self.received_at,
        }

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, Scalar] | None) -> KoreCallbacks | None:
        if not cursor or not isinstance(cursor.get("kore.botId"), str):
            return None

        def text(key: str) -> str | None:
            value = cursor.get(key)
            return value if isinstance(value, str) else None

        received = cursor.get("kore.receivedAt")
        return cls(
            bot_id=text("kore.botId") or "",
            request_id=text("kore.requestId") or "",
            user_id=text("kore.userId") or "",
            channel=text("kore.channel"),
            base_url=text("kore.baseUrl"),
            send_user_message_url=text("kore.sendUserMessageUrl"),
            send_bot_message_url=text("kore.sendBotMessageUrl"),
            # A cursor stored before this key existed counts as the oldest address.
            received_at=float(received)
            if isinstance(received, int | float) and not isinstance(received, bool)
            else 0.0,
        )


#: Channel-cursor key: the ids of the latest ``on_user_message`` requests applied (a JSON list).
RECENT_MESSAGES_KEY: Final = "kore.recentMessageIds"
#: How many of them are remembered: a retry comes seconds after the original, never 20 messages
#: later.
RECENT_MESSAGES_KEPT: Final = 20


def recent_message_ids(cursor: Mapping[str, Scalar] | None) -> tuple[str, ...]:
    """The user message ids a channel cursor remembers (none if it is absent or unreadable)."""
    raw = cursor.get(RECENT_MESSAGES_KEY) if cursor else None
    if not isinstance(raw, str):
        return ()
    try:
        found = json.loads(raw)
    except ValueError:
        return ()
    if not isinstance(found, list):
        return ()
    return tuple(item for item in found if isinstance(item, str))


def channel_cursor(callbacks: KoreCallbacks, recent: tuple[str, ...]) -> dict[str, Scalar]:
    """The channel cursor of a user message: its reply address and the remembered ids."""
    kept = [*recent, callbacks.request_id][-RECENT_MESSAGES_KEPT:]
    return {**callbacks.to_cursor(), RECENT_MESSAGES_KEY: json.dumps(kept)}


# -- the strict converter -------------------------------------------------------------------------


def _strict(kind: type, name: str) -> Any:
    def structure(value: Any, _: type) -> Any:
        # bool is an int subclass: refuse it where a number is expected, and vice versa.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return structure


def _object(value: Any, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook_func(lambda t: t == dict[str, Any], _object)

    def objects_only(cls: type) -> Any:
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, converter, **_renames(cls))

        def structure(value: Any, target: type) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return inner(value, target)

        return structure

    for cls in (
        ChannelInfos,
        Channel,
        HandoffTarget,
        MiawMetaInfo,
        BotUserSession,
        UserContext,
        SessionOpts,
        Session,
        Context,
        EventInfo,
        Webhook,
    ):
        converter.register_structure_hook(cls, objects_only(cls))

    def list_of_targets(value: Any, target: type) -> list[HandoffTarget]:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        found, errors = [], []
        for index, item in enumerate(value):
            try:
                found.append(converter.structure(item, HandoffTarget))
            except Exception as exc:
                note = IterableValidationNote(f"@ index {index}", index, HandoffTarget)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError("While structuring a list", errors, target)
        return found

    converter.register_structure_hook_func(lambda t: t == list[HandoffTarget], list_of_targets)
    return converter


def _renames(cls: type) -> dict[str, Any]:
    names = {field.name for field in attrs.fields(cls)}
    renames: dict[str, Any] = {}
    if "from_" in names:
        renames["from_"] = override(rename="from")
    if "id_" in names:
        renames["id_"] = override(rename="_id")
    return renames


_CONVERTER: Final = _make_converter()


def parse_webhook(body: Mapping[str, Any]) -> Webhook:
    """Structure one webhook body, or raise :class:`RemoteProtocolError` naming the bad field."""
    try:
        return _CONVERTER.structure(body, Webhook)
    except Exception as exc:  # cattrs wraps every failure; turn it into a named field
        if isinstance(exc, cattrs.BaseValidationError):
            messages = cattrs.transform_error(exc, path="$")
        else:
            messages = [str(exc)]
        message = messages[0] if messages else str(exc)
        # Name fields as they are on the wire, not as the Python attributes are spelled.
        message = message.replace(".from_", ".from").replace(".id_", "._id")
        raise RemoteProtocolError(message) from None


def field_of(error: RemoteProtocolError) -> str | None:
    """The ``$.a.b`` path a wire error names (after ``@``), without the ``$.`` prefix."""
    _, at, path = error.message.rpartition(" @ ")
    if not at:
        return None
    return path.removeprefix("$.").removeprefix("$") or "$"
