"""A loopback MIAW server: the endpoints, headers, status codes and event shapes of the reference.

``MiawSimulator(...).app`` is a Starlette ASGI app (serve it with
:func:`handoff_adapters._serve.serve`, on asyncio or trio); the simulator object itself is the
Python controller of its agents and faults, and the same controls are exposed over HTTP under
``/_control/…`` for ``handoff simulate miaw``:

* agents: join (or auto-join after a delay), queue position, messages, typing, transfer to another
  agent, end; routing failure; token expiry;
* faults: drop each SSE connection every N events, replay events after ``Last-Event-Id`` on a
  reconnect (the real service promises no replay, so the default is live-only), delay events,
  answer the next call of a kind with a status (417, 429 with ``Retry-After``, 500…).

Access tokens are HS256 JWTs signed with a per-simulator secret; the client reads their ``exp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = ["Faults", "MiawController", "MiawSimulator", "SimConversation"]

API = "/iamessage/api/v2"
#: The call kinds :meth:`MiawSimulator.fail_next` understands.
CALL_KINDS = frozenset(
    {
        "token",
        "continuation",
        "conversation",
        "message",
        "entry",
        "entries",
        "status",
        "close",
        "sse",
    }
)


#: The last frame of a stream whose JWT lapsed (reference §4.6).
_EXPIRED_FRAME = b'data: {"status":401,"error":"Unauthorized","path":"/eventrouter/v1/sse"}\n\n'


def _frame(event_id: int, event_name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"id: {event_id}\nevent: {event_name}\n{lines}\n".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, "status": status, **extra}, status_code=status)


def _is_lower_uuid(value: object) -> bool:
    if not isinstance(value, str) or value != value.lower():
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@attrs.define
class Faults:
    """What goes wrong, on purpose. Mutate freely (or POST ``/_control/faults``)."""

    #: Close every SSE connection after it has sent this many events.
    drop_every: int | None = None
    #: On (re)connect, send the events after ``Last-Event-Id`` that the client missed.
    replay: bool = False
    #: Seconds to wait before sending each event.
    event_delay: float = 0.0
    #: ``(call kind, status, Retry-After)`` answered to the next calls of that kind, in order.
    fail_next: list[tuple[str, int, float | None]] = attrs.field(factory=list)


@attrs.define
class _Identity:
    """One end user (one token subject): its events, in the order the stream sends them."""

    subject: str
    #: ``(event id, the SSE frame)``
    events: list[tuple[int, bytes]] = attrs.field(factory=list)
    waiters: list[anyio.Event] = attrs.field(factory=list)
    # One-shot faults of this user's stream (see MiawController.inject).
    cut_next: bool = False
    repeat_next: bool = False
    delay_next: float = 0.0
    refuse_next_stream: int | None = None
    #: Every token of this user is refused from now on (the session is lost).
    expired: bool = False
    #: Protocol rules the client broke on this user's stream.
    violations: list[str] = attrs.field(factory=list)

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.set()


@attrs.define
class SimConversation:
    """One conversation as the simulated Salesforce sees it."""

    id: str
    subject: str
    routing_attributes: dict[str, Any]
    language: str | None
    entries: list[dict[str, Any]] = attrs.field(factory=list)
    routing_status: str = "INITIAL"
    agent: str | None = None
    session_active: bool = True
    closed: bool = False
    #: What the end user said, in order, once per message id.
    user_messages: list[str] = attrs.field(factory=list)
    message_ids: set[str] = attrs.field(factory=set)
    #: Message POSTs whose id had been seen already (idempotent resends).
    duplicate_posts: int = 0
    #: The end user's typing indicators, in order.
    user_typing: list[bool] = attrs.field(factory=list)
    new_sessions: int = 0
    #: Routing succeeded at least once (an agent can be given this conversation).
    routed: bool = False
    #: Cut off the response to the next message POST after processing it.
    cut_next_send: bool = False
    #: Protocol rules the client broke in this conversation, as the simulator saw them.
    violations: list[str] = attrs.field(factory=list)


class _CutOffResponse(Response):
    """A response that starts, then breaks off: the request was processed, the client can't know."""

    def __init__(self) -> None:
        super().__init__(status_code=202)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"conversationEn', "more_body": True})
        raise _ConnectionCut("response cut off on purpose (fault injection)")


class _ConnectionCut(Exception):
    pass


class _Frames:
    """The body of one SSE response: events of one identity from ``start`` on, pings, faults.

    An iterator object rather than an async generator: when the client goes away the server
    abandons the body half-way, and an abandoned generator is an error under trio.
    """

    def __init__(
        self, simulator: MiawSimulator, identity: _Identity, claims: dict[str, Any], start: int
    ) -> None:
        self._sim = simulator
        self._identity = identity
        self._claims = claims
        self._index = start
        self._sent = 0
        self._generation = simulator._drop_generation
        self._finished = False

    def __aiter__(self) -> _Frames:
        return self

    async def __anext__(self) -> bytes:
        sim, identity = self._sim, self._identity
        while not self._finished:
            if self._index < len(identity.events):
                frame = identity.events[self._index][1]
                self._index += 1
                if sim.faults.event_delay:
                    await anyio.sleep(sim.faults.event_delay)
                if identity.delay_next:
                    delay, identity.delay_next = identity.delay_next, 0.0
                    await anyio.sleep(delay)
                if identity.repeat_next:
                    # The three events before this one, again (a replay nobody asked for).
                    identity.repeat_next = False
                    earlier = identity.events[max(0, self._index - 4) : self._index - 1]
                    frame = b"".join(f for _, f in earlier) + frame
                if identity.cut_next:
                    # Half a frame, then the connection ends: the event never completes.
                    identity.cut_next = False
                    sim._count("dropped_streams")
                    self._finished = True
                    return frame[: len(frame) // 2]
                self._sent += 1
                if sim.faults.drop_every and self._sent >= sim.faults.drop_every:
                    sim._count("dropped_streams")
                    self._finished = True
                return frame
            if self._generation != sim._drop_generation:
                sim._count("dropped_streams")
                break
            remaining = self._claims["exp"] - sim.clock()
            if remaining <= 0 or self._claims["gen"] < sim._token_generation or identity.expired:
                # What the real stream ends with when the JWT lapses (reference §4.6).
                self._finished = True
                return _EXPIRED_FRAME
            waiter = anyio.Event()
            identity.waiters.append(waiter)
            with anyio.move_on_after(min(sim.ping_interval, remaining)) as scope:
                await waiter.wait()
            if scope.cancelled_caught:
                if waiter in identity.waiters:
                    identity.waiters.remove(waiter)
                return b"event: ping\ndata: 0\n\n"
        raise StopAsyncIteration


class MiawSimulator:
    """The simulated MIAW deployment and its remote-controlled agents."""

    def __init__(
        self,
        *,
        org_id: str = "00DSIM000000001",
        developer_name: str = "handoff_sim",
        auto_join: str | None = None,
        join_delay: float = 0.0,
        queue_position: int | None = None,
        estimated_wait: float | None = None,
        flat_wait: bool = False,
        routing_failure: str | None = None,
        echo: bool = False,
        greeting: str | None = None,
        token_ttl: float = 3600.0,
        ping_interval: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.org_id = org_id[:15]
        self.developer_name = developer_name
        #: Name of the agent who joins every new conversation (``None``: agents join on command).
        self.auto_join = auto_join
        self.join_delay = join_delay
        self.queue_position = queue_position
        self.estimated_wait = estimated_wait
        #: RoutingResult wait shape: ``False`` (default) sends the nested object real servers send
        #: (``estimatedWaitTime: {estimatedWaitTimeInSeconds, isEWTRequested}``, always present);
        #: ``True`` the reference's flat number with ``isEWTAvailable`` (docs/protocol-notes.md).
        self.flat_wait = flat_wait
        #: When set, routing fails with this reason (``failureType: RoutingError``).
        self.routing_failure = routing_failure
        #: Agents answer every user message with "You said: …" (for demos).
        self.echo = echo
        #: What an agent says on joining (``{agent}`` is replaced by their name).
        self.greeting = greeting
        self.token_ttl = token_ttl
        self.ping_interval = ping_interval
        self.faults = Faults()
        self.clock = clock
        self.conversations: dict[str, SimConversation] = {}
        #: Counters: tokens, streams, dropped_streams, rejected:<status>…
        self.stats: dict[str, int] = {}
        self._secret = secrets.token_bytes(32)
        self._identities: dict[str, _Identity] = {}
        self._event_id = 1000
        self._last_ms = 0
        self._drop_generation = 0
        self._token_generation = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._changed: anyio.Event | None = None
        self.app = self._build_app()

    # -- the Python controller --------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> SimConversation:
        try:
            return self.conversations[conversation_id]
        except KeyError:
            raise LookupError(f"no simulated MIAW conversation {conversation_id!r}") from None

    async def wait_for(self, predicate: Callable[[MiawSimulator], bool]) -> None:
        """Wait until ``predicate(self)`` holds (checked whenever something changes).

        Bound it with ``anyio.fail_after`` around the call.
        """
        while not predicate(self):
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def join(self, conversation_id: str, name: str = "Jane Agent") -> None:
        conversation = self.conversation(conversation_id)
        conversation.agent = name
        conversation.routing_status = "ROUTED"
        self._participant(conversation, "add", name)
        if self.greeting:
            self.say(conversation_id, self.greeting.replace("{agent}", name))

    def say(self, conversation_id: str, text: str) -> None:
        conversation = self.conversation(conversation_id)
        self._publish(
            conversation,
            "CONVERSATION_MESSAGE",
            "Message",
            _text_message(text),
            role="Agent",
            name=conversation.agent or "Agent",
            id_in_payload=True,
        )

    def typing(self, conversation_id: str, typing: bool = True) -> None:
        conversation = self.conversation(conversation_id)
        kind = "TypingStartedIndicator" if typing else "TypingStoppedIndicator"
        name = (
            "CONVERSATION_TYPING_STARTED_INDICATOR"
            if typing
            else ("CONVERSATION_TYPING_STOPPED_INDICATOR")
        )
        self._publish(
            conversation,
            name,
            kind,
            {},
            role="Agent",
            name=conversation.agent or "Agent",
            persist=False,
        )

    def queue(self, conversation_id: str, position: int) -> None:
        conversation = self.conversation(conversation_id)
        self._publish(
            conversation,
            "CONVERSATION_QUEUE_POSITION",
            "QueuePosition",
            {"position": position, "workItemId": "0MwSIM"},
            role="Router",
            name="Automated Process",
            persist=False,
        )

    def transfer(self, conversation_id: str, name: str) -> None:
        """The agent transfers the conversation to agent ``name``."""
        conversation = self.conversation(conversation_id)
        conversation.routing_status = "TRANSFER"
        self._participant(conversation, "remove", conversation.agent or "Agent")
        self._routing_result(conversation, routing_type="Transfer")
        conversation.agent = name
        conversation.routing_status = "ROUTED"
        self._participant(conversation, "add", name)

    def end(self, conversation_id: str) -> None:
        """The agent ends the messaging session."""
        conversation = self.conversation(conversation_id)
        conversation.routing_status = "NEEDS_ROUTING"
        conversation.session_active = False
        if conversation.agent is not None:
            self._participant(conversation, "remove", conversation.agent)
        self._publish(
            conversation,
            "CONVERSATION_SESSION_STATUS_CHANGED",
            "SessionStatusChanged",
            {
                "sessionStatus": "Ended",
                "sessionStatusPrev": "Active",
                "sessionEndedByRole": "Agent",
            },
            role="System",
            name="Automated Process",
        )
        conversation.agent = None

    def reject(self, conversation_id: str, reason: str = "No agents are available.") -> None:
        """Routing fails for this conversation (e.g. the queue is closed)."""
        conversation = self.conversation(conversation_id)
        conversation.routing_status = "NEEDS_ROUTING"
        conversation.session_active = False
        self._routing_result(conversation, failure=reason)

    def inject(self, conversation_id: str, event_name: str, data: str) -> None:
        """Send an event with this ``data`` (any text, even broken JSON) to the user's stream."""
        self._append(self.conversation(conversation_id), _frame(self._next_id(), event_name, data))

    def inject_frame(self, conversation_id: str, frame: bytes) -> None:
        """Send these bytes as they are on the user's stream (malformed frames)."""
        self._append(self.conversation(conversation_id), frame)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (new ones are fine)."""
        self._token_generation += 1
        for identity in self._identities.values():
            identity.wake()

    def drop_streams(self) -> None:
        """Close every open SSE connection now."""
        self._drop_generation += 1
        for identity in self._identities.values():
            identity.wake()

    def fail_next(self, kind: str, status: int, retry_after: float | None = None) -> None:
        """Answer the next call of ``kind`` (see :data:`CALL_KINDS`) with ``status``."""
        if kind not in CALL_KINDS:
            raise ValueError(f"unknown call kind {kind!r}; expected one of {sorted(CALL_KINDS)}")
        self.faults.fail_next.append((kind, status, retry_after))

    # -- events -----------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        # Strictly increasing, so the entries list has a total order by time.
        self._last_ms = max(self._last_ms + 1, int(self.clock() * 1000))
        return self._last_ms

    def _identity(self, subject: str) -> _Identity:
        identity = self._identities.get(subject)
        if identity is None:
            identity = self._identities[subject] = _Identity(subject)
        return identity

    def _notify(self) -> None:
        if self._changed is not None:
            changed, self._changed = self._changed, None
            changed.set()

    def _publish(
        self,
        conversation: SimConversation,
        event_name: str,
        entry_type: str,
        payload: dict[str, Any],
        *,
        role: str,
        name: str,
        persist: bool = True,
        id_in_payload: bool = False,
        identifier: str | None = None,
    ) -> dict[str, Any]:
        identifier = identifier or str(uuid.uuid4())
        body = {"entryType": entry_type, "id": identifier, **payload}
        if id_in_payload:
            body["abstractMessage"] = {**body["abstractMessage"], "id": identifier}
        now = self._now_ms()
        app_type = {"EndUser": "iamessage", "Agent": "agent", "Chatbot": "chatbot"}.get(
            role, "conversation"
        )
        entry = {
            "identifier": identifier,
            "entryType": entry_type,
            "entryPayload": body,
            "sender": {
                "role": role,
                "appType": app_type,
                "subject": f"sim:{role}",
                "clientIdentifier": "",
            },
            "senderDisplayName": name,
            "transcriptedTimestamp": now,
            "clientTimestamp": now,
            "clientDuration": 0,
            "contextParamMap": {},
            "visibilityStrategy": "Default",
            "relatedRecords": [],
        }
        if persist:
            conversation.entries.append(entry)
        data = {
            "channelPlatformKey": "sim-platform-key",
            "channelType": "embedded_messaging",
            "channelAddressIdentifier": "sim-channel",
            "conversationId": conversation.id,
            # On the stream the payload is a JSON string inside the JSON (reference §4.4).
            "conversationEntry": {**entry, "entryPayload": json.dumps(body)},
        }
        self._append(conversation, _frame(self._next_id(), event_name, json.dumps(data)))
        return entry

    def _next_id(self) -> int:
        self._event_id += 1
        return self._event_id

    def _append(self, conversation: SimConversation, frame: bytes) -> None:
        identity = self._identity(conversation.subject)
        identity.events.append((self._event_id, frame))
        identity.wake()
        self._notify()

    def _participant(self, conversation: SimConversation, operation: str, name: str) -> None:
        change = {
            "operation": operation,
            "menuMetadata": None,
            "participant": {
                "role": "Agent",
                "appType": "agent",
                "subject": f"005SIM{name}",
                "clientIdentifier": "",
            },
            "displayName": name,
        }
        self._publish(
            conversation,
            "CONVERSATION_PARTICIPANT_CHANGED",
            "ParticipantChanged",
            {"entries": [change]},
            role="System",
            name="Automated Process",
        )

    def _routing_result(
        self,
        conversation: SimConversation,
        *,
        routing_type: str = "Initial",
        failure: str | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "routingType": routing_type,
            "failureType": "RoutingError" if failure else "None",
            "failureReason": failure,
            "recordId": "0MwSIM",
        }
        wait = None if failure or self.estimated_wait is None else round(self.estimated_wait)
        if not self.flat_wait:
            payload["estimatedWaitTime"] = {
                "estimatedWaitTimeInSeconds": wait,
                "isEWTRequested": self.estimated_wait is not None,
            }
        elif wait is not None:
            payload.update(estimatedWaitTime=wait, isEWTRequested=True, isEWTAvailable=True)
        self._publish(
            conversation,
            "CONVERSATION_ROUTING_RESULT",
            "RoutingResult",
            payload,
            role="Router",
            name="Automated Process",
        )

    def _route(self, conversation: SimConversation) -> None:
        """A new messaging session: routing result, queue position, an agent (maybe)."""
        conversation.session_active = True
        conversation.new_sessions += 1
        if self.routing_failure:
            self.reject(conversation.id, self.routing_failure)
            return
        conversation.routing_status = "NEEDS_ROUTING"
        conversation.routed = True
        self._routing_result(conversation)
        if self.queue_position is not None:
            self.queue(conversation.id, self.queue_position)
        if self.auto_join is None:
            return
        if self.join_delay > 0 and self._task_group is not None:
            self._task_group.start_soon(self._join_later, conversation.id, self.auto_join)
        else:
            self.join(conversation.id, self.auto_join)

    async def _join_later(self, conversation_id: str, name: str) -> None:
        await anyio.sleep(self.join_delay)
        conversation = self.conversations.get(conversation_id)
        if conversation is not None and conversation.session_active and conversation.agent is None:
            self.join(conversation_id, name)

    async def _echo_later(self, conversation_id: str, text: str) -> None:
        self.typing(conversation_id, True)
        await anyio.sleep(0.3)
        conversation = self.conversations.get(conversation_id)
        if conversation is not None and conversation.agent is not None:
            self.typing(conversation_id, False)
            self.say(conversation_id, f"You said: {text}")

    # -- tokens -----------------------------------------------------------------------------------

    def _issue(self, subject: str, expires_at: float | None = None) -> dict[str, Any]:
        now = self.clock()
        claims = {
            "iss": "iamessage",
            "sub": subject,
            "orgId": self.org_id,
            "clientId": str(uuid.uuid4()),
            "iat": int(now),
            # Tokens of an older generation are expired (``expire_tokens``).
            "gen": self._token_generation,
            "exp": expires_at if expires_at is not None else now + self.token_ttl,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        identity = self._identity(subject)
        last_event_id = identity.events[-1][0] if identity.events else self._event_id
        self._count("tokens")
        return {
            "accessToken": f"{header}.{body}.{_b64(signature)}",
            "lastEventId": str(last_event_id),
            "context": {
                "endUser": {
                    "subject": subject,
                    "role": "EndUser",
                    "appType": "iamessage",
                    "displayName": "Guest",
                },
                "configuration": {
                    "embeddedServiceConfig": {
                        "name": self.developer_name,
                        "deploymentType": "api",
                        "forms": [],
                    }
                },
            },
        }

    def _claims(self, request: Request) -> dict[str, Any] | None:
        """The verified claims of the request's bearer token, or ``None`` (→ 401)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            header, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims: dict[str, Any] = json.loads(_unb64(body))
        except ValueError:
            return None
        if claims["exp"] <= self.clock() or claims["gen"] < self._token_generation:
            return None
        identity = self._identities.get(claims["sub"])
        if identity is not None and identity.expired:
            return None
        return claims

    # -- HTTP -------------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _injected(self, kind: str) -> Response | None:
        for index, (failing, status, retry_after) in enumerate(self.faults.fail_next):
            if failing == kind:
                del self.faults.fail_next[index]
                self._count(f"injected:{status}")
                headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                messages = {
                    417: "No active messaging session.",
                    429: "Too many requests. Try again in sometime.",
                }
                return JSONResponse(
                    {"message": messages.get(status, "Something went wrong."), "status": status},
                    status_code=status,
                    headers=headers,
                )
        return None

    def _unauthorized(self) -> JSONResponse:
        self._count("rejected:401")
        return JSONResponse(
            {"status": 401, "error": "Unauthorized", "message": "Jwt is expired"}, status_code=401
        )

    async def _json(self, request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _owned(self, request: Request, claims: dict[str, Any]) -> SimConversation | None:
        conversation = self.conversations.get(request.path_params["conversation_id"])
        if conversation is None or conversation.subject != claims["sub"]:
            return None
        return conversation

    async def _token(self, request: Request) -> Response:
        if (injected := self._injected("token")) is not None:
            return injected
        body = await self._json(request)
        if body is None:
            return _error(400, "Invalid request parameters: expected a JSON object.")
        for field in ("orgId", "esDeveloperName", "capabilitiesVersion", "platform"):
            if not isinstance(body.get(field), str):
                return _error(400, f"Invalid request parameters: {field} is required.")
        if body["orgId"][:15] != self.org_id:
            return _error(400, "Invalid request parameters: unknown orgId.")
        if body["esDeveloperName"] != self.developer_name:
            return _error(404, "Resource not found: no such Embedded Service deployment.")
        if request.url.path.endswith("/authenticated/access-token"):
            identity = body.get("customerIdentityToken")
            if body.get("authorizationType") != "JWT" or not isinstance(identity, str):
                return _error(400, "Invalid request parameters: customerIdentityToken required.")
            try:
                subject = json.loads(_unb64(identity.split(".")[1]))["sub"]
            except (IndexError, ValueError, KeyError, TypeError):
                return _error(400, "Invalid request parameters: customerIdentityToken.")
            return JSONResponse(self._issue(f"v2/iamessage/AUTH/sim/uid:{subject}"))
        return JSONResponse(self._issue(f"v2/iamessage/UNAUTH/NA/uid:{uuid.uuid4()}"))

    async def _continuation(self, request: Request) -> Response:
        if (injected := self._injected("continuation")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        # Same subject, new client id, and *not* a later expiry (reference §2.3).
        issued = self._issue(claims["sub"], expires_at=claims["exp"])
        return JSONResponse(
            {"accessToken": issued["accessToken"], "lastEventId": issued["lastEventId"]}
        )

    async def _create(self, request: Request) -> Response:
        if (injected := self._injected("conversation")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        body = await self._json(request)
        if body is None:
            return _error(400, "Invalid request parameters: expected a JSON object.")
        conversation_id = body.get("conversationId")
        if not _is_lower_uuid(conversation_id):
            return _error(400, "Specify the conversationId in UUID format.")
        assert isinstance(conversation_id, str)
        if body.get("esDeveloperName") != self.developer_name:
            return _error(400, "Invalid request parameters: esDeveloperName.")
        attributes = body.get("routingAttributes", {})
        if not isinstance(attributes, dict):
            return _error(400, "Invalid request parameters: routingAttributes.")
        existing = self.conversations.get(conversation_id)
        if existing is not None:
            if existing.subject != claims["sub"]:
                return _error(409, "The conversation belongs to another user.")
            return JSONResponse({"conversationId": conversation_id}, status_code=201)
        conversation = SimConversation(
            id=conversation_id,
            subject=claims["sub"],
            routing_attributes=attributes,
            language=body.get("language") if isinstance(body.get("language"), str) else None,
        )
        self.conversations[conversation_id] = conversation
        self._route(conversation)
        return JSONResponse({"conversationId": conversation_id}, status_code=201)

    async def _message(self, request: Request) -> Response:
        if (injected := self._injected("message")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        conversation = self._owned(request, claims)
        if conversation is None:
            return _error(404, "Resource not found.")
        body = await self._json(request)
        message = body.get("message") if body is not None else None
        if body is None or not isinstance(message, dict):
            return _error(400, "Invalid request parameters: message is required.")
        content = message.get("staticContent")
        text = content.get("text") if isinstance(content, dict) else None
        message_id = message.get("id")
        if (
            not _is_lower_uuid(message_id)
            or message.get("messageType") != "StaticContentMessage"
            or not isinstance(text, str)
        ):
            conversation.violations.append(f"malformed message: {message!r}")
            return _error(400, "Invalid request parameters: message.")
        assert isinstance(message_id, str)
        if body.get("esDeveloperName") != self.developer_name:
            conversation.violations.append("message without the right esDeveloperName")
            return _error(400, "Invalid request parameters: esDeveloperName.")
        if conversation.closed:
            conversation.violations.append("message after the conversation was closed")
            return _error(400, "The conversation is closed.")
        entry_ack = {"conversationEntries": [{"id": message_id, "clientTimestamp": self._now_ms()}]}
        if message_id in conversation.message_ids:
            conversation.duplicate_posts += 1
            return JSONResponse(entry_ack, status_code=202)
        if not conversation.session_active:
            if body.get("isNewMessagingSession") is not True:
                self._count("rejected:417")
                return _error(417, "No active messaging session.")
            self._route(conversation)
        conversation.message_ids.add(message_id)
        conversation.user_messages.append(text)
        self._publish(
            conversation,
            "CONVERSATION_MESSAGE",
            "Message",
            _text_message(text, message_id),
            role="EndUser",
            name="Guest",
            identifier=message_id,
        )
        if self.echo and conversation.agent is not None and self._task_group is not None:
            self._task_group.start_soon(self._echo_later, conversation.id, text)
        if conversation.cut_next_send:
            conversation.cut_next_send = False
            self._count("cut_responses")
            return _CutOffResponse()
        return JSONResponse(entry_ack, status_code=202)

    async def _entry(self, request: Request) -> Response:
        if (injected := self._injected("entry")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        conversation = self._owned(request, claims)
        if conversation is None:
            return _error(404, "Resource not found.")
        body = await self._json(request)
        kind = body.get("entryType") if body is not None else None
        if body is None or kind not in ("TypingStartedIndicator", "TypingStoppedIndicator"):
            conversation.violations.append(f"entry of unknown type {kind!r}")
            return _error(400, "Invalid request parameters: entryType.")
        if not _is_lower_uuid(body.get("id")):
            conversation.violations.append("typing indicator without a lowercase UUID id")
            return _error(400, "Invalid request parameters: id.")
        typing = kind == "TypingStartedIndicator"
        conversation.user_typing.append(typing)
        name = (
            "CONVERSATION_TYPING_STARTED_INDICATOR"
            if typing
            else ("CONVERSATION_TYPING_STOPPED_INDICATOR")
        )
        self._publish(conversation, name, kind, {}, role="EndUser", name="Guest", persist=False)
        self._notify()
        return Response(status_code=202)

    async def _entries(self, request: Request) -> Response:
        if (injected := self._injected("entries")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        conversation = self._owned(request, claims)
        if conversation is None:
            return _error(404, "Resource not found.")
        query = request.query_params
        try:
            limit = min(int(query.get("limit", "20")), 50)
            start = int(query["startTimestamp"]) if "startTimestamp" in query else None
            end = int(query["endTimestamp"]) if "endTimestamp" in query else None
        except ValueError:
            return _error(400, "Invalid request parameters: limit or timestamps.")
        direction = query.get("direction", "FromEnd")
        kinds = set(query["entryTypeFilter"].split(",")) if "entryTypeFilter" in query else None
        entries = [
            e
            for e in conversation.entries
            if (start is None or e["transcriptedTimestamp"] >= start)
            and (end is None or e["transcriptedTimestamp"] <= end)
            and (kinds is None or e["entryType"] in kinds)
        ]
        # FromEnd: the newest first (what the sample app reverses, reference §3.7).
        page = list(reversed(entries))[:limit] if direction == "FromEnd" else entries[:limit]
        return JSONResponse({"conversationEntries": page})

    async def _status(self, request: Request) -> Response:
        if (injected := self._injected("status")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        conversation = self._owned(request, claims)
        if conversation is None:
            return _error(404, "Resource not found.")
        return JSONResponse(
            {"conversationId": conversation.id, "routingStatus": conversation.routing_status}
        )

    async def _close(self, request: Request) -> Response:
        if (injected := self._injected("close")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        conversation = self._owned(request, claims)
        if conversation is None:
            return _error(404, "Resource not found.")
        if request.query_params.get("esDeveloperName") != self.developer_name:
            conversation.violations.append("close without esDeveloperName")
            return _error(400, "Invalid request parameters: esDeveloperName.")
        if not conversation.closed:
            conversation.closed = True
            conversation.session_active = False
            conversation.agent = None
            self._publish(
                conversation,
                "CONVERSATION_CLOSE_CONVERSATION",
                "CloseConversation",
                {"conversationIdentifier": conversation.id},
                role="EndUser",
                name="Guest",
            )
        return Response(status_code=204)

    async def _sse(self, request: Request) -> Response:
        if (injected := self._injected("sse")) is not None:
            return injected
        claims = self._claims(request)
        if claims is None:
            return self._unauthorized()
        headers = request.headers
        identity = self._identity(claims["sub"])
        if headers.get("x-org-id", "")[:15] != self.org_id:
            identity.violations.append("event stream without the org id (X-Org-Id)")
            return _error(400, "Invalid request parameters: X-Org-Id.")
        last_event_id = headers.get("last-event-id")
        if last_event_id is None:
            identity.violations.append("event stream without Last-Event-Id")
            return _error(400, "Invalid request parameters: Last-Event-Id.")
        if "text/event-stream" not in headers.get("accept", ""):
            identity.violations.append("event stream without Accept: text/event-stream")
        if identity.refuse_next_stream is not None:
            status, identity.refuse_next_stream = identity.refuse_next_stream, None
            self._count(f"injected:{status}")
            return _error(status, "The service is moving this session; try again.")
        if self.faults.replay:
            try:
                after = int(last_event_id)
            except ValueError:
                return _error(400, "Invalid request parameters: Last-Event-Id.")
            start = next(
                (i for i, e in enumerate(identity.events) if e[0] > after), len(identity.events)
            )
        else:
            # Live only: what happens from now on (fixed before the response starts, so a client
            # that waits for the headers before creating the conversation misses nothing).
            start = len(identity.events)
        self._count("streams")
        return StreamingResponse(
            _Frames(self, identity, claims, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    # -- the control API --------------------------------------------------------------------------

    async def _control(self, request: Request) -> Response:
        body = await self._json(request) or {}
        action = request.path_params["action"]
        conversation_id = request.path_params["conversation_id"]
        try:
            if action == "join":
                self.join(conversation_id, str(body.get("name", "Jane Agent")))
            elif action == "say":
                self.say(conversation_id, str(body.get("text", "")))
            elif action == "typing":
                self.typing(conversation_id, bool(body.get("typing", True)))
            elif action == "queue":
                self.queue(conversation_id, int(body.get("position", 1)))
            elif action == "transfer":
                self.transfer(conversation_id, str(body.get("name", "Second Agent")))
            elif action == "end":
                self.end(conversation_id)
            elif action == "reject":
                self.reject(conversation_id, str(body.get("reason", "No agents are available.")))
            else:
                return _error(404, f"unknown action {action!r}")
        except LookupError as exc:
            return _error(404, str(exc))
        return JSONResponse({"ok": True})

    async def _control_list(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "id": c.id,
                    "agent": c.agent,
                    "routingStatus": c.routing_status,
                    "closed": c.closed,
                    "userMessages": c.user_messages,
                    "routingAttributes": c.routing_attributes,
                }
                for c in self.conversations.values()
            ]
        )

    async def _control_faults(self, request: Request) -> Response:
        body = await self._json(request) or {}
        if "drop_every" in body:
            self.faults.drop_every = body["drop_every"]
        if "replay" in body:
            self.faults.replay = bool(body["replay"])
        if "event_delay" in body:
            self.faults.event_delay = float(body["event_delay"])
        for item in body.get("fail_next", []):
            try:
                self.fail_next(item["kind"], int(item["status"]), item.get("retry_after"))
            except (KeyError, TypeError, ValueError) as exc:
                return _error(400, f"fail_next: {exc}")
        if "available" in body:
            self.routing_failure = None if body["available"] else "No agents are available."
        if body.get("expire_tokens"):
            self.expire_tokens()
        if body.get("drop_streams"):
            self.drop_streams()
        return JSONResponse(attrs.asdict(self.faults))

    # -- the app ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                yield
            finally:
                self._task_group = None
                task_group.cancel_scope.cancel()

    def _build_app(self) -> Starlette:
        conversation = API + "/conversation/{conversation_id}"
        routes = [
            Route(
                API + "/authorization/unauthenticated/access-token", self._token, methods=["POST"]
            ),
            Route(API + "/authorization/authenticated/access-token", self._token, methods=["POST"]),
            Route(
                API + "/authorization/continuation-access-token",
                self._continuation,
                methods=["GET"],
            ),
            Route(API + "/conversation", self._create, methods=["POST"]),
            Route(conversation + "/message", self._message, methods=["POST"]),
            Route(conversation + "/entry", self._entry, methods=["POST"]),
            Route(conversation + "/entries", self._entries, methods=["GET"]),
            Route(conversation, self._status, methods=["GET"]),
            Route(conversation, self._close, methods=["DELETE"]),
            Route("/eventrouter/v1/sse", self._sse, methods=["GET"]),
            Route("/_control/conversations", self._control_list, methods=["GET"]),
            Route(
                "/_control/conversations/{conversation_id}/{action}",
                self._control,
                methods=["POST"],
            ),
            Route("/_control/faults", self._control_faults, methods=["POST"]),
        ]
        return Starlette(routes=routes, lifespan=self._lifespan)


class MiawController:
    """The kit's :class:`~handoff_adapters.testing.AgentController` for the MIAW simulator.

    Session handles are MIAW conversation ids. Conversations whose routing failed never reach an
    agent, so they are not handed out by :meth:`next_session`. Faults map to MIAW as follows:

    * ``RECONNECT``: the stream is closed and the next connection refused once with 503;
    * ``SERVER_ERROR``: the next message POST gets a 500;
    * ``DROP_STREAM``: the next event is cut off half-way and the connection ends;
    * ``DROP_SEND``: the next message is processed, then its response is cut off;
    * ``REPEAT``: the next event comes with the three before it, again;
    * ``DELAY``: the next event waits half a second;
    * ``SESSION_LOST``: every token of that user is refused (401, and the stream ends).
    """

    def __init__(self, simulator: MiawSimulator, *, delay: float = 0.5) -> None:
        from handoff_adapters.testing import Fault

        self.simulator = simulator
        self.faults = frozenset(Fault)
        self._delay = delay
        self._handed: set[str] = set()

    def _waiting(self) -> list[SimConversation]:
        return [
            c
            for c in self.simulator.conversations.values()
            if c.routed and c.id not in self._handed
        ]

    async def next_session(self) -> str:
        await self.simulator.wait_for(lambda _: bool(self._waiting()))
        conversation = self._waiting()[0]
        self._handed.add(conversation.id)
        return conversation.id

    async def join(self, session: str, agent_name: str) -> None:
        self.simulator.join(session, agent_name)

    async def say(self, session: str, text: str) -> None:
        self.simulator.say(session, text)

    async def typing(self, session: str, typing: bool) -> None:
        self.simulator.typing(session, typing)

    async def transfer(self, session: str, agent_name: str) -> None:
        self.simulator.transfer(session, agent_name)

    async def end(self, session: str) -> None:
        self.simulator.end(session)

    async def received(self, session: str) -> list[str]:
        return list(self.simulator.conversation(session).user_messages)

    async def typing_received(self, session: str) -> list[bool]:
        return list(self.simulator.conversation(session).user_typing)

    async def ended_by_user(self, session: str) -> bool:
        return self.simulator.conversation(session).closed

    async def set_available(self, available: bool) -> None:
        self.simulator.routing_failure = None if available else "No agents are available."

    async def inject(self, session: str, fault: Any) -> None:
        from handoff_adapters.testing import Fault

        sim = self.simulator
        conversation = sim.conversation(session)
        identity = sim._identity(conversation.subject)
        if fault is Fault.RECONNECT:
            identity.refuse_next_stream = 503
            sim.drop_streams()
        elif fault is Fault.SERVER_ERROR:
            sim.fail_next("message", 500)
        elif fault is Fault.DROP_STREAM:
            identity.cut_next = True
        elif fault is Fault.DROP_SEND:
            conversation.cut_next_send = True
        elif fault is Fault.REPEAT:
            identity.repeat_next = True
        elif fault is Fault.DELAY:
            identity.delay_next = self._delay
        elif fault is Fault.SESSION_LOST:
            identity.expired = True
            identity.wake()
        else:
            raise ValueError(f"unsupported fault {fault!r}")

    async def violations(self, session: str) -> list[str]:
        conversation = self.simulator.conversation(session)
        identity = self.simulator._identity(conversation.subject)
        return [*identity.violations, *conversation.violations]


def _text_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    """The ``entryPayload`` of a plain text message; the user's carries its client id (§4.5)."""
    message: dict[str, Any] = {
        "messageType": "StaticContentMessage",
        "inReplyToMessageId": None,
        "references": [],
        "staticContent": {"formatType": "Text", "text": text},
    }
    if message_id is not None:
        message["id"] = message_id
    return {"abstractMessage": message, "messageReason": None}
