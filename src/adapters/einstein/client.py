"""The Einstein Bots runtime API v5.x as a :class:`~handoff_core.ports.BotPlatform`.

One bot session per conversation: the first user message starts it (``POST
/v5.x/bots/{botId}/sessions``, the init message being only ``{text}``), the next ones continue it
(``POST /v5.x/sessions/{id}/messages`` with an increasing ``sequenceId``), a successful transfer
ends it (``DELETE /v5.x/sessions/{id}`` with ``X-Session-End-Reason: Transfer``). Every call
carries ``Authorization: Bearer``, ``X-Org-Id``, a fresh ``X-Request-ID``, and the last
``X-Runtime-CRC`` the runtime sent.

A session started later for the same conversation (the user talks again after the agent chat
ended, the old session expired, or after a bot-to-bot transfer) carries the conversation's
variables (``conversation.variables``, gathered by the core from escalations and bot transfers)
in the init message's ``variables``, typed with the types the runtime reported (kept in the
cursor; unknown ones are sent as ``text``), so the bot goes on with what it knew. ``referrers``
are only sent on bot-to-bot transfers: the spec describes them as the referrers "of transferring
the session to another bot", and the previous session of a restart was ended or expired.

No per-conversation state lives here: the session id, the next sequence id, the runtime CRC, the
pending choices, the escalate message id and the variable types travel in the cursor of every event
returned (the core stores it as ``conversation.bot_cursor`` and hands it back). Never the token.

Errors: 423, 429 and 503 (the spec's "busy", "too many requests" and "unavailable", all answered
before the request is processed) are retried with ``Retry-After`` honoured, a bounded number of
times; 401 re-mints the token once; 404 on a continue (the session expired: the runtime closes
idle sessions after 3 days) starts a new session with the same text; anything else raises
:class:`EinsteinError`, which the runtime turns into ``BotFailed`` (an apology, then an escalation
with reason ``error`` when the bot keeps failing).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import anyio
import attrs
import httpx

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import HandoffError, LocalProtocolError, RemoteProtocolError

from .._http import HttpClients
from . import wire
from .auth import TokenProvider

__all__ = [
    "EinsteinBot",
    "EinsteinConfig",
    "EinsteinError",
    "SessionGone",
    "flatten_variables",
    "org_id_18",
    "render_choices",
    "typed_variables",
]

log = logging.getLogger("handoff.einstein")

#: Statuses answered before any processing (spec: 423 busy, 429 too many, 503 unavailable).
RETRYABLE: Final = frozenset({423, 429, 503})
TARGET_KINDS: Final = {
    wire.TARGET_QUEUE: "queue",
    wire.TARGET_SKILL: "skill",
    wire.TARGET_FLOW: "flow",
    wire.TARGET_BOT: "bot",
}
_FAILED_SESSION_ENDS: Final = frozenset({"Error", "InfiniteLoopDetected"})
_ORG_ID_SUFFIX: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def org_id_18(org_id: str) -> str:
    """The 18-character form of a Salesforce id (the API wants 18; setup pages often show 15)."""
    if len(org_id) == 18 and org_id.isalnum():
        return org_id
    if len(org_id) != 15 or not org_id.isalnum():
        raise LocalProtocolError(f"org_id: expected a 15- or 18-character id, got {org_id!r}")
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, c in enumerate(org_id[chunk * 5 : chunk * 5 + 5]) if c.isupper())
        suffix += _ORG_ID_SUFFIX[bits]
    return org_id + suffix


class EinsteinError(HandoffError):
    """The runtime API answered with an error status (after retries, where retryable)."""

    def __init__(self, message: str, *, status: int, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class SessionGone(EinsteinError):
    """404: the bot session does not exist any more (ended or expired)."""


@attrs.frozen(kw_only=True)
class EinsteinConfig:
    """Where the bot lives. ``runtime_url`` and ``force_endpoint`` come from the bot's
    "Add Connection" dialog ("Runtime Base URL", "ForceConfig Endpoint")."""

    runtime_url: str
    org_id: str = attrs.field(converter=org_id_18)
    bot_id: str
    force_endpoint: str
    api_version: str = "5.3.0"
    #: Sends ``$Context.IntegrationType``/``IntegrationName`` (must match the bot's API connection).
    integration_name: str | None = None
    timezone: str | None = None
    #: Ask for the session's variables on every call (escalations and bot transfers carry them).
    include_variables: bool = True
    variable_filter: tuple[str, ...] = ()
    #: Attempts per call for retryable statuses (423, 429, 503) and refused connections.
    max_attempts: int = 4
    #: Longest wait between attempts, whatever ``Retry-After`` says.
    max_retry_wait: float = 10.0
    #: First backoff when there is no ``Retry-After`` (doubles, with jitter).
    retry_base: float = 0.5


@attrs.frozen(kw_only=True)
class _Cursor:
    """The bot session's resumable position (flattened into ``conversation.bot_cursor``)."""

    bot: str
    key: str
    session: str | None = None
    seq: int = 1
    crc: str | None = None
    choices: tuple[wire.Choice, ...] = ()
    escalate: str | None = None
    var_types: Mapping[str, str] = attrs.field(factory=dict)

    def dump(self) -> ev.Cursor:
        return {
            "bot": self.bot,
            "key": self.key,
            "session": self.session,
            "seq": self.seq,
            "crc": self.crc,
            "choices": json.dumps([[c.id, c.label, c.alias] for c in self.choices])
            if self.choices
            else None,
            "escalate": self.escalate,
            "var_types": json.dumps(dict(self.var_types), sort_keys=True)
            if self.var_types
            else None,
        }

    @classmethod
    def load(cls, data: Mapping[str, ev.Scalar] | None) -> _Cursor | None:
        if not data:
            return None
        bot, key, seq = data.get("bot"), data.get("key"), data.get("seq", 1)
        session, crc, escalate = data.get("session"), data.get("crc"), data.get("escalate")
        try:
            raw_choices = data.get("choices")
            choices = tuple(
                wire.Choice(
                    id=str(i), label=str(label), alias=None if alias is None else str(alias)
                )
                for i, label, alias in (
                    json.loads(raw_choices) if isinstance(raw_choices, str) else []
                )
            )
            raw_types = data.get("var_types")
            var_types = json.loads(raw_types) if isinstance(raw_types, str) else {}
        except (TypeError, ValueError):
            choices, var_types = (), None
        if (
            not isinstance(bot, str)
            or not isinstance(key, str)
            or isinstance(seq, bool)
            or not isinstance(seq, int)
            or not isinstance(var_types, dict)
        ):
            # Our own data, damaged or from another adapter: start a fresh session, don't crash.
            log.warning("ignoring an unreadable Einstein cursor (keys %s)", sorted(data))
            return None
        return cls(
            bot=bot,
            key=key,
            session=session if isinstance(session, str) else None,
            seq=seq,
            crc=crc if isinstance(crc, str) else None,
            choices=choices,
            escalate=escalate if isinstance(escalate, str) else None,
            var_types={str(k): str(v) for k, v in var_types.items()},
        )

    def match_choice(self, text: str) -> wire.Choice | None:
        """The pending choice the user meant by ``text`` (number, alias or label), if any."""
        answer = text.strip().casefold()
        if not answer or not self.choices:
            return None
        for choice in self.choices:
            if choice.alias is not None and choice.alias.casefold() == answer:
                return choice
        if answer.isdigit() and 1 <= int(answer) <= len(self.choices):
            return self.choices[int(answer) - 1]
        for choice in self.choices:
            if choice.label.casefold() == answer:
                return choice
        return None


def render_choices(choices: Sequence[wire.Choice]) -> str:
    """Choices for a text channel: one numbered line each (answerable by number or label)."""
    return "\n".join(f"{number}. {choice.label}" for number, choice in enumerate(choices, 1))


def flatten_variables(
    variables: Sequence[wire.Variable],
) -> tuple[dict[str, ev.Scalar], dict[str, str]]:
    """Einstein's typed variables → flat JSON scalars (the core's form) and their types.

    ``object`` and ``list`` values are kept as JSON text, so a bot transfer can send them back
    unchanged; the types travel in the cursor for the same reason.
    """
    values: dict[str, ev.Scalar] = {}
    types: dict[str, str] = {}
    for variable in variables:
        value = variable.value
        if isinstance(value, list | dict):
            value = json.dumps(value, separators=(",", ":"))
        elif value is not None and not isinstance(value, str | int | float | bool):
            continue
        values[variable.name] = value
        types[variable.name] = variable.type
    return values, types


def typed_variables(
    values: Mapping[str, ev.Scalar], types: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The inverse of :func:`flatten_variables`: each value with the type the runtime reported
    for it (``types``), in the form the spec's variable schemas require. A value without a known
    type, or one that does not fit its type any more, is sent as ``text`` (its JSON text)."""
    result: list[dict[str, Any]] = []
    for name, value in values.items():
        if name.startswith("$"):
            continue  # context variables belong to the session that set them
        kind, wire_value = _typed_value(types.get(name), value)
        result.append({"name": name, "type": kind, "value": wire_value})
    return result


_STRING_TYPES: Final = frozenset({"text", "date", "dateTime", "money", "ref"})


def _typed_value(kind: str | None, value: ev.Scalar) -> tuple[str, Any]:
    if value is None and kind in wire.VARIABLE_TYPES:
        return kind, None  # every variable type's value is nullable
    if kind in _STRING_TYPES and isinstance(value, str):
        return kind, value
    if kind == "boolean" and isinstance(value, bool):
        return kind, value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return kind, value
    if kind in ("object", "list") and isinstance(value, str):
        # Kept as JSON text by flatten_variables: an array (of variables, of typed items).
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, dict) for item in parsed):
            return kind, parsed
    if value is None or isinstance(value, str):
        return "text", value
    return "text", json.dumps(value)


def _retry_after(response: httpx.Response, now: float) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class EinsteinBot:
    """The Einstein Bots runtime API v5.x client (implements ``BotPlatform``).

    ::

        bot = EinsteinBot(EinsteinConfig(runtime_url=..., org_id=..., bot_id=...,
                                         force_endpoint=...),
                          JwtBearerAuth(login_url=..., consumer_key=..., username=...,
                                        private_key=pem))
        runtime = Runtime(bot=bot, agents=..., channel=...)
    """

    def __init__(
        self,
        config: EinsteinConfig,
        auth: TokenProvider,
        *,
        http: HttpClients | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = anyio.sleep,
    ) -> None:
        self.config = config
        self.auth = auth
        self._own_http = http is None
        self.http = http if http is not None else HttpClients(shards=1)
        self.clock = clock
        self._sleep = sleep
        self._base = config.runtime_url.rstrip("/") + f"/v{config.api_version}"
        #: Calls made, retries, token refreshes, restarted sessions (monitoring).
        self.stats: dict[str, int] = {"calls": 0, "retries": 0, "reauth": 0, "restarts": 0}

    def __repr__(self) -> str:
        return (
            f"EinsteinBot(bot_id={self.config.bot_id!r}, runtime_url={self.config.runtime_url!r})"
        )

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> EinsteinBot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the BotPlatform port ---------------------------------------------------------------------

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        bot_id = message.bot or self.config.bot_id
        cursor = _Cursor.load(conversation.bot_cursor)
        if cursor is None or cursor.session is None or cursor.bot != bot_id:
            return await self._restart(conversation, bot_id, message.text, cursor)
        choice = cursor.match_choice(message.text)
        options = self._options()
        if choice is not None:
            body = wire.choice_message(cursor.seq, choice.id, options=options)
        else:
            body = wire.text_message(cursor.seq, message.text, options=options)
        try:
            envelope, crc = await self._call(
                "POST", f"/sessions/{cursor.session}/messages", body, crc=cursor.crc
            )
        except SessionGone:
            self.stats["restarts"] += 1
            log.info("conversation %s: bot session gone, starting a new one", conversation.id)
            return await self._restart(conversation, bot_id, message.text, cursor)
        cursor = attrs.evolve(
            cursor, seq=cursor.seq + 1, crc=crc or cursor.crc, choices=(), escalate=None
        )
        return self._events(envelope, cursor)

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        """Bot-to-bot transfer: a new session on the target bot with ``referrers`` (source bot and
        session) and the source session's variables; then the source session is told the transfer
        succeeded and ended."""
        source = _Cursor.load(conversation.bot_cursor)
        source_bot = request.source_bot or (source.bot if source else self.config.bot_id)
        referrers = [wire.Referrer(type=wire.TARGET_BOT, value=source_bot)]
        if source is not None and source.session is not None:
            referrers.append(wire.Referrer(type=wire.REFERRER_SESSION, value=source.session))
        types = dict(source.var_types) if source else {}
        events = await self._start(
            conversation,
            request.target_bot,
            text=None,
            variables=typed_variables(request.variables, types),
            referrers=referrers,
            cursor=source,
            var_types=types,
        )
        if source is not None and source.session is not None:
            await self._finish_transfer(conversation, source, source.escalate)
        return events

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        cursor = _Cursor.load(conversation.bot_cursor)
        if cursor is None or cursor.session is None:
            log.info("conversation %s: no bot session to report the transfer to", conversation.id)
            return []
        # No escalate message id: the core escalated on its own (the user asked for an agent, the
        # bot kept failing), so the bot has no transfer to be told about.
        in_reply_to = report.escalation_message_id
        if report.outcome is fx.TransferOutcome.SUCCEEDED:
            ended = await self._finish_transfer(conversation, cursor, in_reply_to)
            # The bot's output after a success is empty by contract; the event carries the cursor.
            return [ev.BotReplied(at=self.clock(), text="", cursor=ended.dump())]
        if in_reply_to is None:
            return []
        reason: Literal["NoAgentAvailable", "Error"] = (
            "NoAgentAvailable"
            if report.outcome is fx.TransferOutcome.NO_AGENT_AVAILABLE
            else "Error"
        )
        body = wire.transfer_failed(
            cursor.seq,
            reason=reason,
            description=report.description or reason,
            in_reply_to=in_reply_to,
            options=self._options(),
        )
        try:
            envelope, crc = await self._call(
                "POST", f"/sessions/{cursor.session}/messages", body, crc=cursor.crc
            )
        except SessionGone:
            ended = attrs.evolve(cursor, session=None, crc=None, choices=(), escalate=None)
            return [ev.BotReplied(at=self.clock(), text="", cursor=ended.dump())]
        cursor = attrs.evolve(
            cursor, seq=cursor.seq + 1, crc=crc or cursor.crc, choices=(), escalate=None
        )
        return self._events(envelope, cursor)

    async def end_session(
        self, conversation: Conversation, reason: str = "UserRequest"
    ) -> ev.Cursor | None:
        """End the conversation's bot session (e.g. the user closed the chat); returns the cursor
        to store afterwards, or ``None`` when there was no session."""
        cursor = _Cursor.load(conversation.bot_cursor)
        if cursor is None or cursor.session is None:
            return None
        await self._delete(cursor, reason)
        return attrs.evolve(cursor, session=None, crc=None, choices=()).dump()

    # -- the calls --------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any] | None:
        if not self.config.include_variables:
            return None
        options: dict[str, Any] = wire.response_options(
            include_variables=True, variable_filter=self.config.variable_filter
        )
        return options

    async def _restart(
        self,
        conversation: Conversation,
        bot_id: str,
        text: str,
        cursor: _Cursor | None,
    ) -> list[ev.BotEvent]:
        """A new session for the user's ``text``, carrying the conversation's variables (none
        before the first escalation or bot transfer: the first init is only ``{text}``)."""
        types = dict(cursor.var_types) if cursor else {}
        return await self._start(
            conversation,
            bot_id,
            text=text,
            variables=typed_variables(conversation.variables, types),
            cursor=cursor,
            var_types=types,
        )

    async def _start(
        self,
        conversation: Conversation,
        bot_id: str,
        *,
        text: str | None,
        variables: Sequence[Mapping[str, Any]] = (),
        referrers: Sequence[wire.Referrer] = (),
        cursor: _Cursor | None = None,
        var_types: Mapping[str, str] | None = None,
    ) -> list[ev.BotEvent]:
        key = (
            cursor.key
            if cursor
            else str(uuid.uuid5(uuid.NAMESPACE_URL, f"handoff:{conversation.id}"))
        )
        context = []
        if self.config.integration_name:
            context = [
                {"name": "$Context.IntegrationType", "type": "text", "value": "API"},
                {
                    "name": "$Context.IntegrationName",
                    "type": "text",
                    "value": self.config.integration_name,
                },
            ]
        body = wire.init_envelope(
            external_session_key=key,
            force_endpoint=self.config.force_endpoint,
            text=text,
            variables=[*context, *variables],
            referrers=referrers,
            tz=self.config.timezone,
            options=self._options(),
        )
        envelope, crc = await self._call("POST", f"/bots/{bot_id}/sessions", body, crc=None)
        if not envelope.session_id:
            raise RemoteProtocolError("Einstein start session response: sessionId: missing")
        started = _Cursor(
            bot=bot_id,
            key=key,
            session=envelope.session_id,
            seq=1,
            crc=crc,
            var_types=dict(var_types or {}),
        )
        return self._events(envelope, started)

    async def _finish_transfer(
        self, conversation: Conversation, cursor: _Cursor, in_reply_to: str | None
    ) -> _Cursor:
        """``transferSucceeded`` then ``DELETE … X-Session-End-Reason: Transfer``; returns the
        ended cursor. Failures are logged, not raised: the transfer itself did happen, and an
        abandoned session expires on its own."""
        assert cursor.session is not None
        try:
            if in_reply_to is not None:
                _, crc = await self._call(
                    "POST",
                    f"/sessions/{cursor.session}/messages",
                    wire.transfer_succeeded(cursor.seq, in_reply_to=in_reply_to),
                    crc=cursor.crc,
                )
                cursor = attrs.evolve(cursor, seq=cursor.seq + 1, crc=crc or cursor.crc)
        except SessionGone:
            return attrs.evolve(cursor, session=None, crc=None, choices=(), escalate=None)
        except (HandoffError, httpx.HTTPError) as exc:
            log.warning(
                "conversation %s: reporting the transfer to the bot failed: %s",
                conversation.id,
                exc,
            )
        try:
            await self._delete(cursor, "Transfer")
        except (HandoffError, httpx.HTTPError) as exc:
            log.warning(
                "conversation %s: ending the bot session after the transfer failed: %s",
                conversation.id,
                exc,
            )
        return attrs.evolve(cursor, session=None, crc=None, choices=(), escalate=None)

    async def _delete(self, cursor: _Cursor, reason: str) -> None:
        if reason not in wire.END_REASONS:
            raise LocalProtocolError(f"reason: expected one of {wire.END_REASONS}, got {reason!r}")
        with contextlib.suppress(SessionGone):  # already gone is what we wanted
            await self._call(
                "DELETE", f"/sessions/{cursor.session}", None, crc=cursor.crc, end_reason=reason
            )

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        crc: str | None,
        end_reason: str | None = None,
    ) -> tuple[wire.ResponseEnvelope, str | None]:
        client = self.http.short
        url = self._base + path
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self.auth.token(client)
            request_id = str(uuid.uuid4())
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Org-Id": self.config.org_id,
                "X-Request-ID": request_id,
            }
            if crc is not None:
                headers["X-Runtime-CRC"] = crc
            if end_reason is not None:
                headers["X-Session-End-Reason"] = end_reason
            self.stats["calls"] += 1
            try:
                response = await client.request(method, url, json=body, headers=headers)
            except httpx.ConnectError as exc:
                # Nothing reached the runtime: always safe to try again.
                if attempt >= self.config.max_attempts:
                    raise
                await self._backoff(attempt, None, f"{method} {path}: {exc}")
                continue
            status = response.status_code
            if status == 200:
                try:
                    data = response.json()
                except ValueError:
                    raise RemoteProtocolError(
                        f"Einstein {method} {path}: the 200 response is not JSON"
                    ) from None
                return wire.parse_response(data), response.headers.get("x-runtime-crc")
            error = self._error(method, path, response, request_id)
            if status == 401 and not refreshed:
                refreshed = True
                self.stats["reauth"] += 1
                self.auth.invalidate(token)
                continue
            if status in RETRYABLE and attempt < self.config.max_attempts:
                await self._backoff(attempt, _retry_after(response, self.clock()), error.message)
                continue
            raise error

    async def _backoff(self, attempt: int, retry_after: float | None, why: str) -> None:
        self.stats["retries"] += 1
        if retry_after is None:
            retry_after = self.config.retry_base * 2 ** (attempt - 1) * (0.5 + random.random())
        wait = min(retry_after, self.config.max_retry_wait)
        log.info("Einstein call failed (%s); retrying in %.2f s", why, wait)
        await self._sleep(wait)

    def _error(
        self, method: str, path: str, response: httpx.Response, request_id: str
    ) -> EinsteinError:
        try:
            data = response.json()
        except ValueError:
            data = None
        body = wire.parse_error(data)
        detail = body.message or body.error or response.reason_phrase
        message = (
            f"Einstein {method} {path}: HTTP {response.status_code}: {detail} "
            f"(request {request_id})"
        )
        cls = SessionGone if response.status_code == 404 and "/sessions/" in path else EinsteinError
        return cls(message, status=response.status_code, request_id=request_id)

    # -- responses → events -----------------------------------------------------------------------

    def _events(self, envelope: wire.ResponseEnvelope, cursor: _Cursor) -> list[ev.BotEvent]:
        now = self.clock()
        values: dict[str, ev.Scalar] = {}
        if envelope.variables:
            values, types = flatten_variables(envelope.variables)
            cursor = attrs.evolve(cursor, var_types={**cursor.var_types, **types})
        events: list[ev.BotEvent] = []
        for message in envelope.messages:
            match message:
                case wire.TextMessage():
                    events.append(ev.BotReplied(at=now, text=message.text, peer_id=message.id))
                case wire.ChoicesMessage():
                    cursor = attrs.evolve(cursor, choices=message.choices)
                    events.append(
                        ev.BotReplied(
                            at=now, text=render_choices(message.choices), peer_id=message.id
                        )
                    )
                case wire.EscalateMessage():
                    cursor = attrs.evolve(cursor, escalate=message.id)
                    events.append(self._escalation(message, values, now))
                case wire.SessionEndedMessage():
                    cursor = attrs.evolve(cursor, session=None, crc=None, choices=())
                    if message.reason in _FAILED_SESSION_ENDS:
                        events.append(
                            ev.BotFailed(
                                at=now,
                                peer_id=message.id,
                                description=f"the bot ended its session ({message.reason})",
                            )
                        )
                case wire.UnknownMessage():
                    log.info("skipping an Einstein message of unknown type %r", message.type)
        if not events:
            # Nothing to say, but the session moved on: the cursor must still reach the store.
            events.append(ev.BotReplied(at=now, text=""))
        dumped = cursor.dump()
        return [attrs.evolve(event, cursor=dumped) for event in events]

    @staticmethod
    def _escalation(
        message: wire.EscalateMessage, variables: Mapping[str, ev.Scalar], now: float
    ) -> ev.BotEvent:
        if message.targets and message.targets[0].type == wire.TARGET_BOT:
            return ev.BotTransferRequested(
                at=now,
                peer_id=message.id,
                target_bot=message.targets[0].value,
                variables=variables,
            )
        targets = tuple(
            ev.EscalationTarget(kind=TARGET_KINDS.get(t.type, t.type), value=t.value)
            for t in message.targets
            if t.value
        )
        return ev.BotEscalated(
            at=now,
            peer_id=message.id,
            reason=ev.EscalationReason.BOT_DECISION,
            targets=targets,
            variables=variables,
            message_id=message.id,
        )
