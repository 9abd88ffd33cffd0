"""The MIAW agent backend: :class:`~handoff_core.ports.AgentBackend` over REST + SSE.

Salesforce Messaging for In-App and Web ("Enhanced Chat"), custom-client API; the wire reference
is ``/work/shared/protocols/miaw.md`` (§ numbers below point into it).

One conversation = one end-user identity = one access token = one SSE stream:

1. ``open``: mint a guest (or user-verified) access token, open ``/eventrouter/v1/sse`` *before*
   creating the conversation (events that follow the create — the routing result — would
   otherwise be lost: the stream does not promise replay, §4.6), then ``POST …/conversation``
   with a lowercase UUID derived from the core's session id (a retried ``open`` is idempotent).
2. ``events``: follow the stream (parsed by httpx-sse), decode the double-encoded
   ``entryPayload``, translate entries into core events (§5). On a dropped stream: back off,
   reconnect with ``Last-Event-Id``, then reconcile through the entries list; every entry is
   de-duplicated by its ``identifier`` (here and, across processes, by the core's ``peer_id``).
3. ``send``/``typing``/``close``: ids derived from the effect key, so a retried step re-sends the
   same message id.

The resumable cursor is ``conversation_id``, ``token``, ``last_event_id`` and ``since`` (the last
seen ``transcriptedTimestamp``, where reconciliation starts). The token is a bearer secret: it never
appears in a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, Final

import anyio
import attrs
import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from handoff_adapters._http import HttpClients
from handoff_adapters.miaw import wire
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import HandoffError, RemoteProtocolError

__all__ = [
    "IdentityTokenSource",
    "MiawBackend",
    "MiawError",
    "SessionExpired",
    "conversation_uuid",
    "entry_text",
]

log = logging.getLogger("handoff.miaw")

#: Namespace of the UUIDs we derive (conversation ids from sessions, message ids from effect keys).
_NAMESPACE: Final = uuid.UUID("5f0b6a52-0d8e-4d47-9a4e-6e1c0f3a9b21")
_API: Final = "/iamessage/api/v2"
#: Entries per page of the entries list (the documented maximum, §3.7).
_PAGE: Final = 50
#: Entry identifiers remembered per stream for de-duplication (the core keeps its own window).
_SEEN_LIMIT: Final = 2048

#: A user-verified identity token (the customer's JWT, §2.2), per conversation.
IdentityTokenSource = Callable[[Conversation], Awaitable[str]]


def _derived_uuid(name: str) -> str:
    # Deterministic (a retry gets the same id) but stamped as version 4: a community guide reports
    # the server rejecting non-v4 UUIDs (reference §1, UNCONFIRMED), so we don't send v5 ones.
    return str(uuid.UUID(bytes=uuid.uuid5(_NAMESPACE, name).bytes, version=4))


def conversation_uuid(session: str, identity: str | None = None) -> str:
    """The MIAW conversation id of a core agent session (lowercase, as the API requires).

    Derived from the session, so a retried ``open`` is idempotent. When that id is taken by
    another identity (a guest token minted by another process after a crash, or a reused
    conversation id), ``open`` falls back to the id derived with ``identity``, the token subject.
    """
    if identity is None:
        return _derived_uuid(f"conversation:{session}")
    return _derived_uuid(f"conversation:{identity}:{session}")


def _language(code: str) -> str:
    # The core speaks BCP 47 ("pt-BR"); MIAW samples use Salesforce locales ("en_US").
    return code.replace("-", "_")


def _token_claims(token: str) -> tuple[float, str]:
    """``exp`` and ``sub`` of a JWT, read without verifying it (we are the bearer, §2.4)."""
    try:
        payload_part = token.split(".")[1]
        padded = payload_part + "=" * (-len(payload_part) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        exp = claims["exp"]
    except (IndexError, ValueError, KeyError, TypeError, binascii.Error):
        raise RemoteProtocolError("access token: not a JWT with an exp claim") from None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise RemoteProtocolError("access token: exp claim is not a number")
    subject = claims.get("sub")
    return float(exp), subject if isinstance(subject, str) else ""


def _token(value: str, last_event_id: str | None = None) -> _Token:
    expires_at, subject = _token_claims(value)
    return _Token(value=value, expires_at=expires_at, subject=subject, last_event_id=last_event_id)


class MiawError(HandoffError):
    """The MIAW API answered with an error status (the message names the call and the status)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SessionExpired(HandoffError):
    """The access token expired or was refused: the identity, and its conversation, are gone."""


@attrs.define(kw_only=True)
class _Token:
    value: str = attrs.field(repr=False)
    expires_at: float
    subject: str = ""
    last_event_id: str | None = None


@attrs.define(kw_only=True)
class _Position:
    """Where one ``events()`` run is: becomes the cursor after each event."""

    conversation_id: str
    token: _Token
    last_event_id: str | None
    since: int | None
    seen: OrderedDict[str, None] = attrs.field(factory=OrderedDict)
    #: An agent left for a transfer: the next agent to join is announced as the transfer target.
    transferring: bool = False
    #: The routing result's wait estimate: queue updates restate it (the core takes each queue
    #: event as the whole picture).
    estimated_wait: float | None = None

    def cursor(self) -> ev.Cursor:
        return {
            "conversation_id": self.conversation_id,
            "token": self.token.value,
            "last_event_id": self.last_event_id,
            "since": self.since,
            "transferring": self.transferring,
        }

    def first_time(self, identifier: str) -> bool:
        if identifier in self.seen:
            return False
        self.seen[identifier] = None
        if len(self.seen) > _SEEN_LIMIT:
            self.seen.popitem(last=False)
        return True


@attrs.define
class _Live:
    """A stream ``open`` started, waiting for ``events`` to pick it up."""

    response: httpx.Response
    position: _Position


def entry_text(payload: wire.MessagePayload) -> str:
    """The text of a message entry; rich formats degrade to text and links (§4.5)."""
    message = payload.abstract_message
    content = message.static_content
    if content is not None:
        parts = [p for p in (content.text, content.title, content.url) if p]
        for attachment in content.attachments:
            name = attachment.get("name")
            url = attachment.get("url")
            parts.append(" ".join(str(p) for p in (name, url) if p) or "[attachment]")
        return "\n".join(parts)
    if message.choices is not None:
        parts = [message.choices.text] if message.choices.text else []
        for item in message.choices.option_items:
            title_item = item.get("titleItem")
            title = title_item.get("title") if isinstance(title_item, dict) else None
            if title:
                parts.append(f"- {title}")
        return "\n".join(parts)
    return f"[{message.message_type}]"


def _reject_reason(failure_type: str) -> ev.RejectReason:
    # RoutingError is what an Omni-Channel flow reports when no queue/agent takes the work.
    if failure_type == "RoutingError":
        return ev.RejectReason.NO_AGENT_AVAILABLE
    return ev.RejectReason.ERROR


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


class MiawBackend:
    """Salesforce MIAW as an :class:`~handoff_core.ports.AgentBackend`.

    ``url`` is the deployment's SCRT base URL, ``org_id`` the org id (sent as its first 15
    characters, §1), ``developer_name`` the Custom Client deployment's API name. Pass
    ``identity_token`` for user-verified conversations (authenticated tokens, re-minted on
    expiry); without it, guest tokens are used and an expired token ends the session.
    """

    def __init__(
        self,
        url: str,
        org_id: str,
        developer_name: str,
        *,
        clients: HttpClients | None = None,
        name: str = "miaw",
        language: str | None = None,
        capabilities_version: str = "1",
        platform: str = "Web",
        app_name: str = "handoff",
        identity_token: IdentityTokenSource | None = None,
        heartbeat_timeout: float = 90.0,
        reconnect_delay: float = 1.0,
        reconnect_max_delay: float = 30.0,
        reconnect_attempts: int = 10,
        max_retries: int = 3,
        max_retry_after: float = 30.0,
        max_event_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = url.rstrip("/")
        self._org_id = org_id[:15]
        self._developer_name = developer_name
        self._owns_clients = clients is None
        self._clients = clients if clients is not None else HttpClients()
        self._language = language
        self._capabilities_version = capabilities_version
        self._platform = platform
        self._app_name = app_name
        self._identity_token = identity_token
        self._heartbeat_timeout = heartbeat_timeout
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._reconnect_attempts = reconnect_attempts
        self._max_retries = max_retries
        self._max_retry_after = max_retry_after
        self._max_event_bytes = max_event_bytes
        self._clock = clock
        #: Counters: reconnects, reconciled entries, skipped:<why> for bad input, retries…
        self.stats: Counter[str] = Counter()
        # In-process caches only; everything here can be rebuilt from a cursor.
        self._live: dict[str, _Live] = {}
        self._tokens: dict[str, _Token] = {}

    def __repr__(self) -> str:
        return f"MiawBackend(url={self._url!r}, developer_name={self._developer_name!r})"

    async def aclose(self) -> None:
        for live in list(self._live.values()):
            await _close_quietly(live.response)
        self._live.clear()
        if self._owns_clients:
            await self._clients.aclose()

    async def __aenter__(self) -> MiawBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the port ---------------------------------------------------------------------------------

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        # MIAW has no availability call for custom clients: routing answers (RoutingResult).
        return True

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        token = self._tokens.get(request.session)
        if token is None or token.expires_at <= self._clock():
            token = await self._mint(conversation)
            self._tokens[request.session] = token
        conversation_id = conversation_uuid(request.session)
        position = _Position(
            conversation_id=conversation_id,
            token=token,
            last_event_id=token.last_event_id,
            since=None,
        )
        response = await self._connect(position)
        try:
            try:
                await self._create(conversation_id, token, request.context)
            except MiawError as exc:
                # 409: the id belongs to another identity (§6: candidate meaning, UNCONFIRMED);
                # this identity cannot read it, so it takes its own.
                if exc.status != 409:
                    raise
                self.stats["conversation_id_conflicts"] += 1
                conversation_id = conversation_uuid(request.session, token.subject)
                position.conversation_id = conversation_id
                await self._create(conversation_id, token, request.context)
        except BaseException:
            await _close_quietly(response)
            raise
        previous = self._live.pop(request.session, None)
        if previous is not None:
            await _close_quietly(previous.response)
        self._live[request.session] = _Live(response, position)
        log.info("conversation %s: MIAW conversation %s created", conversation.id, conversation_id)
        return position.cursor()

    async def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        live = self._live.pop(session, None)
        if live is not None:
            position = live.position
            response: httpx.Response | None = live.response
            reconcile = False
        else:
            # A fresh process (or a second pump) resuming from the stored cursor: we may have
            # missed events while nobody listened, so reconcile after connecting.
            position = self._position_from(session, cursor)
            response = None
            reconcile = True
        attempt = 0
        while True:
            stream: AsyncGenerator[ServerSentEvent, None] | None = None
            try:
                if response is None:
                    if reconcile and session not in self._tokens:
                        await self._continue(session, position)
                    position.token = await self._fresh_token(conversation, session, position)
                    try:
                        response = await self._connect(position)
                    except SessionExpired:
                        if self._identity_token is None:
                            raise
                        position.token = await self._renew(
                            conversation, session, "the event stream refused the access token"
                        )
                        response = await self._connect(position)
                attempt = 0
                if reconcile:
                    async with aclosing(self._reconcile(conversation, session, position)) as missed:
                        async for event in missed:
                            yield event
                            if _is_final(event):
                                return
                    yield ev.AgentCursorAdvanced(
                        at=self._clock(), session=session, cursor=position.cursor()
                    )
                stream = EventSource(response).aiter_sse()
                async for sse in stream:
                    for event in await self._on_sse(conversation, session, position, sse):
                        yield event
                        if _is_final(event):
                            return
                self.stats["streams_ended"] += 1
                log.info("conversation %s: MIAW event stream ended; reconnecting", conversation.id)
            except SessionExpired as exc:
                log.warning("conversation %s: MIAW session lost: %s", conversation.id, exc)
                yield ev.BackendSessionLost(
                    at=self._clock(),
                    session=session,
                    description=str(exc),
                    cursor=position.cursor(),
                )
                return
            except (httpx.TransportError, SSEError, MiawError) as exc:
                self.stats["stream_errors"] += 1
                log.info(
                    "conversation %s: MIAW event stream failed: %s", conversation.id, _describe(exc)
                )
                if isinstance(exc, MiawError) and 400 <= exc.status < 500 and exc.status != 429:
                    raise  # the stream is refused for good (bad org id, deployment…)
            finally:
                if response is not None:
                    await _close_stream(response, stream)
                    response = None
            attempt += 1
            if attempt > self._reconnect_attempts:
                raise ConnectionError(
                    f"MIAW event stream: gave up after {self._reconnect_attempts} reconnects"
                )
            self.stats["reconnects"] += 1
            # The sample app's schedule (§4.6): 1 s * 1.5^(n-1), capped.
            await anyio.sleep(
                min(self._reconnect_delay * 1.5 ** (attempt - 1), self._reconnect_max_delay)
            )
            reconcile = True

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        conversation_id, _ = self._session_of(conversation, message.session)
        body: dict[str, Any] = {
            "message": {
                "id": _derived_uuid(f"message:{message.key}"),
                "messageType": "StaticContentMessage",
                "staticContent": {"formatType": "Text", "text": message.text},
            },
            "esDeveloperName": self._developer_name,
            "isNewMessagingSession": False,
        }
        path = f"{_API}/conversation/{conversation_id}/message"
        response = await self._call(conversation, message.session, "POST", path, json=body)
        if response.status_code == 417:
            # No messaging session on this conversation any more (§3.2): resend the same message
            # (same id) opening a new one, with the routing attributes again.
            self.stats["new_messaging_sessions"] += 1
            body["isNewMessagingSession"] = True
            body["routingAttributes"] = _routing_attributes(conversation.prechat)
            response = await self._call(conversation, message.session, "POST", path, json=body)
        _expect_ok(response, "send message")

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None:
        conversation_id, _ = self._session_of(conversation, request.session)
        entry_type = "TypingStartedIndicator" if request.typing else "TypingStoppedIndicator"
        body = {"entryType": entry_type, "id": _derived_uuid(f"typing:{request.key}")}
        path = f"{_API}/conversation/{conversation_id}/entry"
        response = await self._call(conversation, request.session, "POST", path, json=body)
        _expect_ok(response, "typing indicator")

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        live = self._live.pop(request.session, None)
        if live is not None:
            await _close_quietly(live.response)
        try:
            if request.peer_closed:
                return
            try:
                conversation_id, _ = self._session_of(conversation, request.session)
            except HandoffError:
                return  # never opened: nothing to close on the peer
            path = f"{_API}/conversation/{conversation_id}"
            try:
                response = await self._call(
                    conversation,
                    request.session,
                    "DELETE",
                    path,
                    params={"esDeveloperName": self._developer_name},
                )
            except SessionExpired:
                return  # the identity is gone, and its conversation with it
            # 404: already closed on Salesforce's side (Botpress ignores it too, §3.9).
            if response.status_code != 404:
                _expect_ok(response, "close conversation")
        finally:
            self._tokens.pop(request.session, None)

    # -- tokens -----------------------------------------------------------------------------------

    async def _mint(self, conversation: Conversation) -> _Token:
        body: dict[str, Any] = {
            "orgId": self._org_id,
            "esDeveloperName": self._developer_name,
            "capabilitiesVersion": self._capabilities_version,
            "platform": self._platform,
            "context": {"appName": self._app_name, "clientVersion": "1"},
        }
        if self._identity_token is not None:
            path = f"{_API}/authorization/authenticated/access-token"
            body["authorizationType"] = "JWT"
            body["customerIdentityToken"] = await self._identity_token(conversation)
        else:
            path = f"{_API}/authorization/unauthenticated/access-token"
        response = await self._send_with_retries("POST", path, json=body)
        _expect_ok(response, "access token")
        self.stats["tokens_minted"] += 1
        return self._token_from(response, "access token")

    def _token_from(self, response: httpx.Response, what: str) -> _Token:
        parsed = wire.parse_json(response.content, wire.AccessToken, what)
        return _token(parsed.access_token, parsed.last_event_id)

    async def _continue(self, session: str, position: _Position) -> None:
        """A new process picking up a stored token: get a continuation token for it (§2.3).

        It has the same subject (so the same conversation) and a client id of its own, as the
        sample app does on reload; it does not extend the expiry, so failures fall back to the
        stored token, which the expiry check then judges.
        """
        if position.token.expires_at <= self._clock():
            return
        path = f"{_API}/authorization/continuation-access-token"
        try:
            response = await self._clients.short.get(
                self._url + path, headers={"Authorization": f"Bearer {position.token.value}"}
            )
        except httpx.TransportError:
            return
        if response.status_code == 200:
            try:
                position.token = self._token_from(response, "continuation token")
            except RemoteProtocolError as exc:
                log.warning("MIAW continuation token ignored: %s", exc)
                return
            self.stats["continuation_tokens"] += 1
        self._tokens[session] = position.token

    async def _fresh_token(
        self, conversation: Conversation, session: str, position: _Position
    ) -> _Token:
        token = self._tokens.get(session, position.token)
        if token.expires_at > self._clock():
            return token
        return await self._renew(conversation, session, "the access token expired")

    async def _renew(self, conversation: Conversation, session: str, why: str) -> _Token:
        if self._identity_token is None:
            # A new guest token is a new identity that cannot read this conversation (§2.4).
            raise SessionExpired(f"MIAW: {why}")
        self.stats["tokens_renewed"] += 1
        token = await self._mint(conversation)
        self._tokens[session] = token
        return token

    # -- requests ---------------------------------------------------------------------------------

    def _session_of(self, conversation: Conversation, session: str) -> tuple[str, _Token]:
        cursor = conversation.agent_cursor or {}
        token = self._tokens.get(session)
        if token is None:
            stored = cursor.get("token")
            if not isinstance(stored, str):
                raise HandoffError(f"MIAW session {session!r}: no access token (never opened?)")
            token = self._tokens[session] = _token(stored)
        conversation_id = cursor.get("conversation_id")
        if not isinstance(conversation_id, str):
            conversation_id = conversation_uuid(session)
        return conversation_id, token

    def _position_from(self, session: str, cursor: ev.Cursor) -> _Position:
        conversation_id = cursor.get("conversation_id")
        stored = cursor.get("token")
        last_event_id = cursor.get("last_event_id")
        since = cursor.get("since")
        if not isinstance(conversation_id, str) or not isinstance(stored, str):
            raise HandoffError(f"MIAW session {session!r}: cursor lacks conversation id or token")
        token = self._tokens.get(session) or _token(stored)
        return _Position(
            conversation_id=conversation_id,
            token=token,
            last_event_id=last_event_id if isinstance(last_event_id, str) else None,
            since=since if isinstance(since, int) and not isinstance(since, bool) else None,
            transferring=cursor.get("transferring") is True,
        )

    async def _call(
        self,
        conversation: Conversation,
        session: str,
        method: str,
        path: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """An authorized call: an expired token is renewed (verified users) or ends the session."""
        _, token = self._session_of(conversation, session)
        if token.expires_at <= self._clock():
            token = await self._renew(conversation, session, "the access token expired")
        response = await self._send_with_retries(method, path, token=token, **kwargs)
        if response.status_code == 401:
            token = await self._renew(conversation, session, "the access token was refused (401)")
            response = await self._send_with_retries(method, path, token=token, **kwargs)
            if response.status_code == 401:
                raise SessionExpired("MIAW: the renewed access token was refused (401)")
        return response

    async def _send_with_retries(
        self, method: str, path: str, *, token: _Token | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request on the short client; 429 waits for Retry-After, 5xx backs off.

        A transport error (the response cut off) is retried too: every call we make is
        idempotent, by its client-generated id (messages, typing, the conversation) or by nature.
        """
        headers = {"Authorization": f"Bearer {token.value}"} if token is not None else {}
        attempt = 0
        while True:
            try:
                response = await self._clients.short.request(
                    method, self._url + path, headers=headers, **kwargs
                )
            except httpx.TransportError as exc:
                if attempt >= self._max_retries:
                    raise
                attempt += 1
                self.stats["retried:transport"] += 1
                log.info("MIAW %s %s: %s, retrying", method, path.split("/")[-1], _describe(exc))
                await anyio.sleep(min(self._reconnect_delay * 2 ** (attempt - 1), 5.0))
                continue
            retryable = response.status_code == 429 or response.status_code >= 500
            if not retryable or attempt >= self._max_retries:
                return response
            attempt += 1
            self.stats[f"retried:{response.status_code}"] += 1
            delay = min(self._reconnect_delay * 2 ** (attempt - 1), self._max_retry_after)
            if response.status_code == 429:
                delay = min(_retry_after(response, delay), self._max_retry_after)
            log.info(
                "MIAW %s %s: %d, retrying in %.2fs",
                method,
                path.split("/")[-1],
                response.status_code,
                delay,
            )
            await anyio.sleep(delay)

    async def _create(
        self, conversation_id: str, token: _Token, context: fx.HandoffContext
    ) -> None:
        body: dict[str, Any] = {
            "conversationId": conversation_id,
            "esDeveloperName": self._developer_name,
            "routingAttributes": _routing_attributes(context.prechat),
            "language": _language(self._language or context.language),
        }
        response = await self._send_with_retries(
            "POST", f"{_API}/conversation", token=token, json=body
        )
        if response.status_code == 401:
            raise SessionExpired("MIAW: the new access token was refused (401)")
        _expect_ok(response, "create conversation")

    async def _connect(self, position: _Position) -> httpx.Response:
        """Open the SSE stream for this identity (§4.1); returns once the server said 200."""
        client = self._clients.stream(position.conversation_id)
        request = client.build_request(
            "GET",
            self._url + "/eventrouter/v1/sse",
            headers={
                "Accept": "text/event-stream",
                "Cache-Control": "no-store",
                "Authorization": f"Bearer {position.token.value}",
                "X-Org-Id": self._org_id,
                # Required by the server (§4.1); "0" when the token response carried none.
                "Last-Event-Id": position.last_event_id or "0",
            },
            # The read timeout is the heartbeat: silence that long means a dead stream (§4.6).
            timeout=httpx.Timeout(10.0, read=self._heartbeat_timeout),
        )
        response = await client.send(request, stream=True)
        if response.status_code == 200:
            return response
        try:
            await response.aread()
        finally:
            await _close_quietly(response)
        if response.status_code == 401:
            raise SessionExpired("MIAW: the event stream refused the access token (401)")
        raise MiawError(
            f"MIAW event stream: HTTP {response.status_code} {_error_message(response)}",
            status=response.status_code,
        )

    async def _routing_status(self, conversation: Conversation, session: str) -> str | None:
        conversation_id, _ = self._session_of(conversation, session)
        response = await self._call(
            conversation, session, "GET", f"{_API}/conversation/{conversation_id}"
        )
        if response.status_code != 200:
            return None
        return wire.parse_json(
            response.content, wire.RoutingStatus, "routing status"
        ).routing_status

    # -- translating entries ----------------------------------------------------------------------

    async def _on_sse(
        self,
        conversation: Conversation,
        session: str,
        position: _Position,
        sse: ServerSentEvent,
    ) -> list[ev.AgentEvent]:
        if sse.id:
            position.last_event_id = sse.id
        if sse.event == "ping" or not sse.data.strip():
            return []
        if len(sse.data) > self._max_event_bytes:
            return self._skip(
                conversation,
                "oversized",
                f"{sse.event} event {sse.id or '?'} of {len(sse.data)} bytes",
            )
        try:
            envelope = wire.parse_json(sse.data, wire.EventEnvelope, f"{sse.event} event")
        except RemoteProtocolError as exc:
            return self._skip(conversation, "malformed", exc.message)
        if envelope.conversation_id.lower() != position.conversation_id:
            return self._skip(
                conversation,
                "unknown_conversation",
                f"{sse.event} event for conversation {envelope.conversation_id}",
            )
        return await self._on_entry(conversation, session, position, envelope.conversation_entry)

    def _skip(self, conversation: Conversation, why: str, detail: str) -> list[ev.AgentEvent]:
        self.stats[f"skipped:{why}"] += 1
        log.warning("conversation %s: skipped a MIAW event (%s): %s", conversation.id, why, detail)
        return []

    async def _on_entry(
        self,
        conversation: Conversation,
        session: str,
        position: _Position,
        entry: wire.ConversationEntry,
    ) -> list[ev.AgentEvent]:
        if not position.first_time(entry.identifier):
            self.stats["duplicates"] += 1
            return []
        if entry.transcripted_timestamp is not None:
            position.since = max(position.since or 0, entry.transcripted_timestamp)
        try:
            return await self._translate(conversation, session, position, entry)
        except RemoteProtocolError as exc:
            return self._skip(conversation, "bad_payload", exc.message)

    async def _translate(
        self,
        conversation: Conversation,
        session: str,
        position: _Position,
        entry: wire.ConversationEntry,
    ) -> list[ev.AgentEvent]:
        role = entry.sender.role if entry.sender is not None else None
        common: dict[str, Any] = {"at": self._clock(), "session": session}

        def make(cls: type[ev.AgentEvent], index: int = 0, **fields: Any) -> ev.AgentEvent:
            # One entry can carry several changes: each needs its own peer id for the core.
            peer_id = entry.identifier if index == 0 else f"{entry.identifier}#{index}"
            return cls(**common, peer_id=peer_id, cursor=position.cursor(), **fields)

        match entry.entry_type:
            case "Message":
                if role == "EndUser":
                    return []  # the echo of our own message (§3.2)
                payload = wire.decode_entry_payload(entry, wire.MessagePayload)
                return [make(ev.AgentMessage, text=entry_text(payload))]
            case "TypingStartedIndicator" | "TypingStoppedIndicator":
                if role == "EndUser":
                    return []
                typing = entry.entry_type == "TypingStartedIndicator"
                return [make(ev.AgentTyping, typing=typing)]
            case "RoutingResult":
                result = wire.decode_entry_payload(entry, wire.RoutingResultPayload)
                initial = result.routing_type in (None, "Initial")
                if result.failure_type == "None":
                    if not initial:
                        position.transferring = True  # the join that follows says to whom
                        return []
                    # Already None unless the server says the wait is known (wire.py).
                    position.estimated_wait = result.estimated_wait_time
                    return [make(ev.AgentAccepted, estimated_wait=position.estimated_wait)]
                if not initial:
                    log.info(
                        "conversation %s: MIAW transfer routing failed: %s",
                        conversation.id,
                        result.failure_reason or result.failure_type,
                    )
                    return []
                return [
                    make(
                        ev.TransferRejected,
                        reason=_reject_reason(result.failure_type),
                        description=result.failure_reason or result.failure_type,
                    )
                ]
            case "QueuePosition":
                queue = wire.decode_entry_payload(entry, wire.QueuePositionPayload)
                if queue.position is None or queue.position < 0:
                    return []
                return [
                    make(
                        ev.QueueUpdated,
                        queue_position=queue.position,
                        estimated_wait=position.estimated_wait,
                    )
                ]
            case "ParticipantChanged":
                changed = wire.decode_entry_payload(entry, wire.ParticipantChangedPayload)
                events: list[ev.AgentEvent] = []
                for change in changed.entries:
                    if change.participant.role != "Agent":
                        continue  # bots, supervisors monitoring, the end user
                    name = change.display_name or ""
                    if change.operation == "add":
                        # After a transfer the newcomer is who the user was transferred to.
                        kind = ev.AgentTransferred if position.transferring else ev.AgentJoined
                        position.transferring = False
                        events.append(make(kind, len(events), agent_name=name))
                    elif change.operation == "remove":
                        # Transfer or end? Only the routing status tells (§3.8, §5).
                        routing = await self._routing_status(conversation, session)
                        if routing == "NEEDS_ROUTING":
                            events.append(make(ev.AgentEnded, len(events), reason="agent"))
                            break
                        # Told when the next agent joins, with their name.
                        position.transferring = True
                return events
            case "SessionStatusChanged":
                status = wire.decode_entry_payload(entry, wire.SessionStatusChangedPayload)
                # A supervisor ending their monitoring is not the end of the chat (§5).
                if status.session_status != "Ended" or status.session_ended_by_role == "Supervisor":
                    return []
                return [make(ev.AgentEnded, reason="agent")]
            case "CloseConversation":
                return [make(ev.AgentEnded, reason="closed")]
        # New entry types appear at any time and must be ignored (§4.4).
        self.stats[f"ignored:{entry.entry_type}"] += 1
        return []

    async def _reconcile(
        self, conversation: Conversation, session: str, position: _Position
    ) -> AsyncGenerator[ev.AgentEvent, None]:
        """Entries we may have missed while the stream was down (§3.7, §4.6), oldest first."""
        path = f"{_API}/conversation/{position.conversation_id}/entries"
        start = position.since
        while True:
            params: dict[str, Any] = {"limit": _PAGE, "direction": "FromStart"}
            if start is not None:
                params["startTimestamp"] = start
            response = await self._call(conversation, session, "GET", path, params=params)
            _expect_ok(response, "list entries")
            page = wire.parse_json(response.content, wire.EntriesPage, "entries")
            # The documented order is unclear (§3.7): sort, stably, by server time.
            entries = sorted(page.conversation_entries, key=lambda e: e.transcripted_timestamp or 0)
            fresh = 0
            for entry in entries:
                if entry.identifier not in position.seen:
                    fresh += 1
                    self.stats["reconciled"] += 1
                for event in await self._on_entry(conversation, session, position, entry):
                    yield event
            last = entries[-1].transcripted_timestamp if entries else None
            if len(entries) < _PAGE or not fresh or last is None or last == start:
                return
            start = last


def _is_final(event: ev.AgentEvent) -> bool:
    return isinstance(event, ev.AgentEnded | ev.TransferRejected | ev.BackendSessionLost)


def _routing_attributes(prechat: Mapping[str, ev.Scalar]) -> dict[str, ev.Scalar]:
    # Pre-chat values become routing attributes (§3.1), keyed by the pre-chat field names.
    return {key: value for key, value in prechat.items() if value is not None}


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, str):
            return message[:200]
    return response.text[:200]


def _expect_ok(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    if response.status_code == 401:
        raise SessionExpired(f"MIAW {what}: the access token was refused (401)")
    raise MiawError(
        f"MIAW {what}: HTTP {response.status_code} {_error_message(response)}",
        status=response.status_code,
    )


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _close_stream(
    response: httpx.Response, stream: AsyncGenerator[ServerSentEvent, None] | None
) -> None:
    """Close an SSE response and finish the generators reading it.

    httpx and httpcore read bodies through a chain of async generators; abandoning them half-way
    leaves them to the garbage collector, which trio reports (encode/httpx#3686). Closing the
    response first and then pulling once more makes every layer of the chain end with the read
    error, so nothing is left half-consumed.
    """
    await _close_quietly(response)
    if stream is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        try:
            async for _ in stream:
                pass
        except Exception:  # any read error is the expected way out here
            log.debug("an SSE stream ended while being closed", exc_info=True)


async def _close_quietly(response: httpx.Response) -> None:
    # Shielded: closing runs in finally blocks of cancelled pumps, and an unclosed socket is both
    # a leak and (in the tests) an error.
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        try:
            await response.aclose()
        except (httpx.HTTPError, OSError):
            log.debug("closing a MIAW response failed", exc_info=True)
