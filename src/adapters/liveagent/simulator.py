"""A Live Agent (legacy Chat REST API) server on loopback: the visitor side of the protocol.

It speaks the wire protocol our adapter speaks to Salesforce (``../shared/protocols/liveagent.md``):
the four ``X-LIVEAGENT-*`` headers, ``System/SessionId``, ``Chasitor/ChasitorInit``, the
``System/Messages`` long poll that holds until there is a message or its timeout (200 with a
``sequence`` and ``offset``, 204 when idle, 409 on a second concurrent poll), ``ack`` semantics
(un-acked batches are delivered again), ``X-LIVEAGENT-SEQUENCE`` de-duplication of POSTs, the 503 →
``ReconnectSession`` → ``ChasitorSessionData`` → ``ChasitorResyncState`` procedure, and
``Visitor/Availability``. Requests are validated; bad ones get the documented status codes and
are recorded as *violations* so tests can assert a client broke no rule.

The simulated agent joins after ``agent_delay`` seconds (or only when told), walks down the queue,
greets, optionally echoes, and can be driven remotely: over HTTP (``/_control/...``, handy with
curl while ``handoff simulate liveagent`` runs) or in process with :class:`LiveAgentController`.
Faults can be injected per session: affinity change (503), 500, 403, 409, delays, dropped
connections, a repeated batch, a garbage body.

Nothing here runs in the background: scheduled agent actions are released when a poll or a
control call looks at the session, and a held poll sleeps exactly until the next one is due.
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from handoff_adapters.liveagent import wire
from handoff_adapters.testing.agent_backend import Fault
from handoff_core.errors import RemoteProtocolError

__all__ = [
    "LiveAgentController",
    "SimFault",
    "SimSession",
    "Simulator",
    "SimulatorConfig",
    "create_app",
]

log = logging.getLogger("handoff.liveagent.simulator")

#: Resources that must carry ``X-LIVEAGENT-SEQUENCE`` (§2 of the reference).
SEQUENCED: Final = frozenset(
    {
        "ChasitorInit",
        "ChatMessage",
        "ChasitorTyping",
        "ChasitorNotTyping",
        "ChasitorSneakPeek",
        "ChatEnd",
        "CustomEvent",
    }
)
#: Resources a visitor may only call once an agent accepted ("otherwise the API throws a
#: NullPointer exception, and you receive a 500 error", §2).
NEEDS_AGENT: Final = frozenset({"ChatMessage", "ChasitorTyping", "ChasitorNotTyping"})
#: How long a second poll waits for the first one's client to go away before it counts as a
#: duplicate long poll (a client that timed out a poll and re-polled at once is not a duplicate).
DUPLICATE_POLL_GRACE: Final = 0.3


class SimFault(enum.Enum):
    """Faults the simulator can inject into one session's next request(s)."""

    #: The affinity token changes: every request gets 503 until ``ReconnectSession``.
    RECONNECT = "reconnect"
    #: The next request gets a 500 (the session is unaffected).
    SERVER_ERROR = "server_error"
    #: The next request gets a 403 and the session is gone.
    SESSION_LOST = "session_lost"
    #: The next poll gets a 409 (duplicate long poll) and the chat is terminated.
    CONFLICT = "conflict"
    #: The next poll that has messages is cut off mid-body (the batch stays un-acked).
    DROP_POLL = "drop_poll"
    #: The next POST is processed, then its response is cut off.
    DROP_POST = "drop_post"
    #: The next poll re-delivers the last batch, whatever ``ack`` says.
    REPEAT = "repeat"
    #: The next poll answers ``seconds`` late.
    DELAY = "delay"
    #: The next poll answers 200 with ``body`` (raw text): non-JSON, wrong types, huge…
    GARBAGE = "garbage"


@attrs.define(kw_only=True)
class SimulatorConfig:
    """How the simulated org behaves."""

    #: Required values of ``organizationId`` / ``deploymentId`` (``None``: accept any).
    organization_id: str | None = None
    deployment_id: str | None = None
    #: Availability per button id; buttons not listed use ``default_available``.
    availability: dict[str, bool] = attrs.field(factory=dict)
    default_available: bool = True
    agent_name: str = "Ada"
    #: Seconds until the agent accepts a chat; ``None``: only when told (control API).
    agent_delay: float | None = 2.0
    #: Queue position announced in ChatRequestSuccess; it counts down to 1 before the join.
    queue_position: int = 1
    #: Seconds announced as ``estimatedWaitTime`` (API ≥ 47); ``None``: -1 (unknown).
    estimated_wait: float | None = 60.0
    #: What the agent says after joining (``{agent}`` is replaced), ``None``: nothing.
    greeting: str | None = "Hi, I'm {agent}. How can I help you?"
    #: The agent answers every visitor message with "You said: …" (for offline development).
    echo: bool = False
    #: ``clientPollTimeout`` returned by SessionId, and how long a poll is held.
    client_poll_timeout: int = 30
    hold_seconds: float | None = None


@attrs.define(kw_only=True)
class _Batch:
    sequence: int
    offset: int
    messages: list[tuple[str, dict[str, Any]]]


@attrs.define(kw_only=True)
class Received:
    """Something the visitor sent (for tests and the control API)."""

    noun: str
    body: dict[str, Any]
    sequence: int | None

    @property
    def text(self) -> str | None:
        value = self.body.get("text")
        return value if isinstance(value, str) else None


@attrs.define(kw_only=True, eq=False)
class SimSession:
    """One chat session as the server sees it."""

    id: str
    key: str = attrs.field(repr=False)
    affinity: str = attrs.field(repr=False)
    api_version: int
    created_at: float
    stale_affinities: set[str] = attrs.field(factory=set, repr=False)
    state: str = "new"  # new → queued → chatting → ended
    init: wire.ChasitorInit | None = None
    agent_name: str | None = None
    end_reason: str | None = None
    pending: list[tuple[str, dict[str, Any]]] = attrs.field(factory=list)
    batches: list[_Batch] = attrs.field(factory=list)
    last_batch: _Batch | None = None
    next_sequence: int = 1
    offset: int = attrs.field(factory=lambda: 54_647_000)
    last_post_sequence: int = 0
    polls_open: int = 0
    poll_counts: list[int | None] = attrs.field(factory=list)
    moved: bool = False
    resync_pending: bool = False
    scheduled: list[tuple[float, int, str, dict[str, Any]]] = attrs.field(factory=list)
    faults: list[tuple[SimFault, dict[str, Any]]] = attrs.field(factory=list)
    received: list[Received] = attrs.field(factory=list)
    violations: list[str] = attrs.field(factory=list)
    duplicates_ignored: int = 0
    reconnects: int = 0
    wake: anyio.Event | None = attrs.field(default=None, repr=False)

    @property
    def texts(self) -> list[str]:
        """What the visitor said to the agent, in order (duplicates never appear here)."""
        return [r.text for r in self.received if r.noun == "ChatMessage" and r.text is not None]

    def notify(self) -> None:
        if self.wake is not None:
            self.wake.set()
        self.wake = anyio.Event()


class _HttpError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _DroppedResponse(Response):
    """Starts a 200 with a promised length, sends part of it, then drops the connection."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self._payload = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._payload)).encode()),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": self._payload[: len(self._payload) // 2],
                "more_body": True,
            }
        )
        raise ConnectionAbortedError("simulated dropped connection")


class Simulator:
    """The simulated Live Agent service: sessions, agents, faults. ``app`` serves it."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.sessions: dict[str, SimSession] = {}  # by session id (public; the key is secret)
        self._by_key: dict[str, SimSession] = {}
        self._tiebreak = itertools.count()
        self._changed: anyio.Event | None = None
        self.app = create_app(self)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _notify(self, session: SimSession | None = None) -> None:
        if session is not None:
            session.notify()
        if self._changed is not None:
            self._changed.set()
        self._changed = anyio.Event()

    async def wait_changed(self) -> None:
        """Sleep until anything changes (wrap in ``anyio.move_on_after`` to bound it)."""
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def session(self, handle: str) -> SimSession:
        """A session by id; ``"latest"`` is the newest one."""
        if handle == "latest":
            if not self.sessions:
                raise KeyError("no session yet")
            return list(self.sessions.values())[-1]
        return self.sessions[handle]

    def _enqueue(self, session: SimSession, kind: str, payload: Mapping[str, Any]) -> None:
        session.pending.append((kind, dict(payload)))
        self._notify(session)

    def _schedule(
        self, session: SimSession, delay: float, kind: str, payload: Mapping[str, Any]
    ) -> None:
        due = time.monotonic() + delay
        session.scheduled.append((due, next(self._tiebreak), kind, dict(payload)))
        session.scheduled.sort()
        self._notify(session)

    def _release_due(self, session: SimSession) -> None:
        now = time.monotonic()
        while session.scheduled and session.scheduled[0][0] <= now:
            _, _, kind, payload = session.scheduled.pop(0)
            self._apply_scheduled(session, kind, payload)

    def _apply_scheduled(self, session: SimSession, kind: str, payload: dict[str, Any]) -> None:
        if session.state == "ended":
            return
        if kind == "ChatEstablished":
            if session.state == "chatting":
                return  # joined by hand meanwhile
            self.join(session, payload["name"], greet=True)
            return
        if kind == "QueueUpdate" and session.state != "queued":
            return
        if kind in ("ChatMessage", "AgentTyping", "AgentNotTyping") and session.state != "chatting":
            return
        self._enqueue(session, kind, payload)

    def _next_due(self, session: SimSession) -> float | None:
        return session.scheduled[0][0] if session.scheduled else None

    def _take_batch(self, session: SimSession, ack: int | None) -> _Batch | None:
        """The batch a poll with ``ack`` gets now, or ``None`` (nothing to say)."""
        if ack is None:  # no ack (like Salesforce's own Android SDK): everything sent is acked
            session.batches.clear()
        else:
            session.batches = [b for b in session.batches if b.sequence > ack]
        if self._pop_fault(session, SimFault.REPEAT) is not None and session.last_batch:
            return session.last_batch
        self._release_due(session)
        if session.batches:
            return session.batches[0]  # delivered before but never acked: deliver it again
        if not session.pending:
            return None
        messages, session.pending = session.pending, []
        session.offset += len(messages)
        batch = _Batch(sequence=session.next_sequence, offset=session.offset, messages=messages)
        session.next_sequence += 1
        session.batches.append(batch)
        session.last_batch = batch
        return batch

    def _pop_fault(self, session: SimSession, *kinds: SimFault) -> dict[str, Any] | None:
        for index, (kind, options) in enumerate(session.faults):
            if kind in kinds:
                del session.faults[index]
                return {"kind": kind, **options}
        return None

    def _end(self, session: SimSession, reason: str) -> None:
        if session.state != "ended":
            session.state = "ended"
            session.end_reason = reason
            session.scheduled.clear()
        self._notify(session)

    # -- agent actions (control API and scripts) --------------------------------------------------

    def join(self, session: SimSession, name: str | None = None, *, greet: bool = False) -> None:
        if session.state not in ("queued", "chatting"):
            raise _HttpError(409, f"session is {session.state}: an agent can't join")
        name = name or self.config.agent_name
        if session.state == "chatting":
            self.transfer(session, name)
            return
        session.state, session.agent_name = "chatting", name
        self._enqueue(
            session,
            "ChatEstablished",
            {
                "name": name,
                "userId": _agent_id(name),
                "sneakPeekEnabled": False,
                "chasitorIdleTimeout": {"isEnabled": False, "warningTime": 0, "timeout": 0},
            },
        )
        if greet and self.config.greeting:
            text = self.config.greeting.replace("{agent}", name)
            self._enqueue(session, "AgentTyping", {})
            self._schedule(session, 0.3, "ChatMessage", {"name": name, "text": text})

    def say(self, session: SimSession, text: str) -> None:
        self._require_agent(session)
        self._enqueue(session, "ChatMessage", {"name": session.agent_name, "text": text})

    def typing(self, session: SimSession, typing: bool) -> None:
        self._require_agent(session)
        self._enqueue(session, "AgentTyping" if typing else "AgentNotTyping", {})

    def transfer(self, session: SimSession, name: str) -> None:
        self._require_agent(session)
        session.agent_name = name
        self._enqueue(
            session,
            "ChatTransferred",
            {"name": name, "userId": _agent_id(name), "sneakPeekEnabled": False},
        )

    def end(self, session: SimSession, reason: str = "agent") -> None:
        if session.state == "ended":
            return
        self._enqueue(session, "ChatEnded", {"reason": reason, "attachedRecords": []})
        self._end(session, reason)

    def push_raw(self, session: SimSession, kind: str, payload: Mapping[str, Any]) -> None:
        """Queue any message, e.g. one of a type the client does not know."""
        self._enqueue(session, kind, payload)

    def inject(self, session: SimSession, fault: SimFault, **options: Any) -> None:
        if fault is SimFault.RECONNECT:
            # The session moves to another server now: every request gets 503 until the client
            # runs ReconnectSession (§3.10).
            session.stale_affinities.add(session.affinity)
            session.affinity = secrets.token_hex(4)
            session.moved = True
        else:
            count = int(options.pop("count", 1))
            session.faults.extend((fault, dict(options)) for _ in range(count))
        self._notify(session)

    def set_available(self, available: bool, button: str | None = None) -> None:
        if button is None:
            self.config.default_available = available
            self.config.availability.clear()
        else:
            self.config.availability[button] = available
        self._notify()

    def is_available(self, button: str) -> bool:
        return self.config.availability.get(button, self.config.default_available)

    def _require_agent(self, session: SimSession) -> None:
        if session.state != "chatting":
            raise _HttpError(409, f"session is {session.state}: no agent in the chat")

    # -- request validation -----------------------------------------------------------------------

    def _api_version(self, request: Request) -> int:
        value = request.headers.get("x-liveagent-api-version")
        if value is None or not value.strip().isdigit() or int(value) < 29:
            raise _HttpError(400, "X-LIVEAGENT-API-VERSION: expected an integer ≥ 29")
        return int(value)

    def _session_for(self, request: Request) -> SimSession:
        self._api_version(request)
        key = request.headers.get("x-liveagent-session-key")
        if not key:
            raise _HttpError(400, "X-LIVEAGENT-SESSION-KEY is required")
        session = self._by_key.get(key)
        if session is None:
            raise _HttpError(403, "session is not valid")
        affinity = request.headers.get("x-liveagent-affinity")
        if affinity is None:
            raise _HttpError(400, "X-LIVEAGENT-AFFINITY is required")
        if session.moved or affinity in session.stale_affinities:
            raise _HttpError(503, "affinity token has changed")
        if affinity != session.affinity:
            session.violations.append(f"{request.url.path}: wrong X-LIVEAGENT-AFFINITY")
            raise _HttpError(403, "session is not valid")
        return session

    @staticmethod
    async def _json_body(request: Request, *, optional: bool = False) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            if optional:
                return {}
            raise _HttpError(400, "request body required")
        try:
            body = json.loads(raw)
        except ValueError:
            raise _HttpError(400, "request body is not JSON") from None
        if not isinstance(body, dict):
            raise _HttpError(400, "request body must be a JSON object")
        return body

    # -- System -----------------------------------------------------------------------------------

    async def session_id(self, request: Request) -> Response:
        version = self._api_version(request)
        if request.headers.get("x-liveagent-affinity") != "null":
            raise _HttpError(400, 'X-LIVEAGENT-AFFINITY must be the literal "null" for SessionId')
        session_id = str(uuid.uuid4())
        key = f"{uuid.uuid4()}!{int(time.time() * 1000)}!{secrets.token_urlsafe(20)}"
        session = SimSession(
            id=session_id,
            key=key,
            affinity=secrets.token_hex(4),
            api_version=version,
            created_at=time.monotonic(),
        )
        session.notify()
        self.sessions[session_id] = session
        self._by_key[key] = session
        self._notify()
        return JSONResponse(
            {
                "id": session_id,
                "key": key,
                "affinityToken": session.affinity,
                "clientPollTimeout": self.config.client_poll_timeout,
            }
        )

    async def delete_session(self, request: Request) -> Response:
        self._api_version(request)
        session = self._by_key.get(request.path_params["key"])
        if session is None:
            raise _HttpError(403, "session is not valid")
        self._end(session, "client")
        return Response(status_code=200)

    async def messages(self, request: Request) -> Response:
        session = self._session_for(request)
        fault = self._pop_fault(
            session, SimFault.SERVER_ERROR, SimFault.SESSION_LOST, SimFault.CONFLICT
        )
        if fault is not None:
            return self._fault_response(session, fault["kind"])
        ack = self._query_int(request, "ack", session)
        session.poll_counts.append(self._query_int(request, "pc", session, required=False))
        if session.polls_open:
            with anyio.move_on_after(DUPLICATE_POLL_GRACE):
                while session.polls_open:
                    await self.wait_changed()
            if session.polls_open:
                session.violations.append("System/Messages: a second concurrent long poll")
                self.end(session, "duplicateLongPoll")
                raise _HttpError(409, "duplicate long poll: the chat was terminated")
        session.polls_open += 1
        try:
            return await self._hold_poll(request, session, ack)
        finally:
            session.polls_open -= 1
            self._notify()

    async def _hold_poll(self, request: Request, session: SimSession, ack: int | None) -> Response:
        hold = self.config.hold_seconds or float(self.config.client_poll_timeout)
        deadline = time.monotonic() + hold
        batch: _Batch | None = None
        while True:
            if session.moved:
                raise _HttpError(503, "affinity token has changed")
            batch = self._take_batch(session, ack)
            if batch is not None:
                break
            if session.state == "ended":
                raise _HttpError(403, "session is not valid")
            now = time.monotonic()
            if now >= deadline:
                return Response(status_code=204)
            due = self._next_due(session)
            wait = min(deadline, due if due is not None else deadline) - now
            assert session.wake is not None
            if not await _wait_or_disconnect(request, session.wake.wait, max(wait, 0)):
                return Response(status_code=204)  # the client went away; nobody reads this
        fault = self._pop_fault(session, SimFault.DELAY, SimFault.DROP_POLL, SimFault.GARBAGE)
        body = wire.messages_body(batch.messages, batch.sequence, batch.offset)
        if fault is not None:
            if fault["kind"] is SimFault.DELAY:
                await anyio.sleep(float(fault.get("seconds", 1.0)))
            elif fault["kind"] is SimFault.DROP_POLL:
                return _DroppedResponse(json.dumps(body).encode())
            else:
                return Response(
                    str(fault.get("body", "<html>not json</html>")),
                    media_type="application/json",
                )
        return JSONResponse(body)

    def _fault_response(self, session: SimSession, kind: SimFault) -> Response:
        if kind is SimFault.SESSION_LOST:
            self._end(session, "sessionLost")
            return PlainTextResponse("session is not valid", status_code=403)
        if kind is SimFault.CONFLICT:
            self._end(session, "duplicateLongPoll")
            return PlainTextResponse(
                "A duplicate long poll using the same session ID has caused the chat to terminate.",
                status_code=409,
            )
        return PlainTextResponse("simulated server error", status_code=500)

    @staticmethod
    def _query_int(
        request: Request, name: str, session: SimSession, *, required: bool = True
    ) -> int | None:
        value = request.query_params.get(name)
        if value is None:
            if required:
                session.violations.append(f"System/Messages: no {name} parameter")
            return None
        try:
            return int(value)
        except ValueError:
            raise _HttpError(400, f"{name}: expected an integer") from None

    async def reconnect(self, request: Request) -> Response:
        self._api_version(request)
        key = request.headers.get("x-liveagent-session-key") or ""
        session = self._by_key.get(key)
        if session is None or session.state == "ended":
            raise _HttpError(403, "session is not valid")
        if not session.moved:
            # Salesforce answers 405 when no 503 preceded the call (observed, §3.10).
            raise _HttpError(405, "ReconnectSession without a preceding 503")
        try:
            offset = int(request.query_params.get("ReconnectSession.offset", "0"))
        except ValueError:
            raise _HttpError(400, "ReconnectSession.offset: expected an integer") from None
        # Batches the client says it received (offset ≤ its offset) are done; the rest, and
        # anything not yet sent, follows the ChasitorSessionData message, numbered afresh.
        undelivered = [m for b in session.batches if b.offset > offset for m in b.messages]
        session.pending = [
            ("ChasitorSessionData", self._session_data(session)),
            *undelivered,
            *session.pending,
        ]
        session.batches.clear()
        session.last_batch = None
        session.next_sequence = 1
        session.last_post_sequence = 0
        session.moved = False
        session.resync_pending = True
        session.reconnects += 1
        self._notify(session)
        return JSONResponse(
            {
                "messages": [
                    {
                        "type": "ReconnectSession",
                        "message": {"resetSequence": True, "affinityToken": session.affinity},
                    }
                ]
            }
        )

    @staticmethod
    def _session_data(session: SimSession) -> dict[str, Any]:
        transcript = [
            {
                "type": "Chasitor",
                "name": session.init.visitor_name if session.init else "",
                "content": text,
                "timestamp": int(time.time() * 1000),
                "sequence": index,
            }
            for index, text in enumerate(session.texts, start=1)
        ]
        return {
            "queuePosition": 0 if session.state == "chatting" else 1,
            "url": "",
            "oref": "",
            "postChatUrl": "",
            "sneakPeekEnabled": False,
            "chatMessages": transcript,
        }

    # -- Chasitor ---------------------------------------------------------------------------------

    async def chasitor(self, request: Request) -> Response:
        noun = request.path_params["noun"]
        handler = self._NOUNS.get(noun)
        if handler is None:
            raise _HttpError(404, f"unknown resource Chasitor/{noun}")
        session = self._session_for(request)
        if session.state == "ended" and noun != "ChatEnd":
            raise _HttpError(403, "session is not valid")
        sequence: int | None = None
        if noun in SEQUENCED:
            raw = request.headers.get("x-liveagent-sequence")
            if raw is None or not raw.strip().lstrip("-").isdigit():
                raise _HttpError(400, f"Chasitor/{noun}: X-LIVEAGENT-SEQUENCE is required")
            sequence = int(raw)
            if sequence <= session.last_post_sequence:
                # The documented purpose of the header: a retried request is not done twice.
                session.duplicates_ignored += 1
                return Response(status_code=200)
            expected = session.last_post_sequence + 1
            if sequence != expected:
                session.violations.append(
                    f"Chasitor/{noun}: sequence {sequence}, expected {expected}"
                )
                raise _HttpError(409, f"Out of sync Ack. Expected {expected}. Actual {sequence}")
        fault = self._pop_fault(session, SimFault.SERVER_ERROR, SimFault.SESSION_LOST)
        if fault is not None:
            return self._fault_response(session, fault["kind"])
        if session.resync_pending and noun != "ChasitorResyncState":
            session.violations.append(f"Chasitor/{noun} sent before ChasitorResyncState")
        body = await self._json_body(
            request, optional=noun in ("ChasitorTyping", "ChasitorNotTyping")
        )
        if noun in NEEDS_AGENT and session.state != "chatting":
            session.violations.append(f"Chasitor/{noun} before ChatEstablished")
            raise _HttpError(500, "java.lang.NullPointerException")
        response = await handler(self, session, body)
        if sequence is not None:
            session.last_post_sequence = sequence
        session.received.append(Received(noun=noun, body=body, sequence=sequence))
        self._notify(session)
        if self._pop_fault(session, SimFault.DROP_POST) is not None:
            return _DroppedResponse(b"OK" * 8)
        return response

    async def _init(self, session: SimSession, body: dict[str, Any]) -> Response:
        if session.init is not None:
            raise _HttpError(400, "ChasitorInit was already sent for this session")
        try:
            init = wire.structure(body, wire.ChasitorInit, "ChasitorInit")
        except RemoteProtocolError as exc:
            raise _HttpError(
                400, exc.message.replace("malformed response", "bad request")
            ) from None
        config = self.config
        for field, wanted, got in (
            ("organizationId", config.organization_id, init.organization_id),
            ("deploymentId", config.deployment_id, init.deployment_id),
        ):
            if wanted is not None and wanted != got:
                raise _HttpError(400, f"ChasitorInit: unknown {field} {got!r}")
        if init.session_id != session.id:
            raise _HttpError(400, "ChasitorInit: sessionId is not this session's id")
        session.init = init
        if not init.is_post:
            self._enqueue(session, "ChatRequestFail", {"reason": "NoPost", "postChatUrl": ""})
            self._end(session, "NoPost")
            return Response(status_code=200)
        buttons = init.button_overrides or (init.button_id,)
        if not any(self.is_available(b.split("_")[-1]) for b in buttons):
            self._enqueue(session, "ChatRequestFail", {"reason": "Unavailable", "postChatUrl": ""})
            self._end(session, "Unavailable")
            return Response(status_code=200)
        session.state = "queued"
        position = max(1, config.queue_position)
        success: dict[str, Any] = {
            "queuePosition": position,
            "geoLocation": {"countryCode": "US", "countryName": "United States of America"},
            "url": "",
            "oref": "",
            "postChatUrl": "",
            "customDetails": [],
            "visitorId": str(uuid.uuid5(uuid.NAMESPACE_URL, session.id)),
        }
        if session.api_version >= 47:
            success["estimatedWaitTime"] = (
                -1 if config.estimated_wait is None else config.estimated_wait
            )
        self._enqueue(session, "ChatRequestSuccess", success)
        delay = config.agent_delay
        if delay is not None:
            if init.receive_queue_updates:
                for step, left in enumerate(range(position - 1, 0, -1), start=1):
                    self._schedule(
                        session, delay * step / position, "QueueUpdate", {"position": left}
                    )
            self._schedule(session, delay, "ChatEstablished", {"name": config.agent_name})
        return Response(status_code=200)

    async def _chat_message(self, session: SimSession, body: dict[str, Any]) -> Response:
        text = body.get("text")
        if not isinstance(text, str):
            raise _HttpError(400, "ChatMessage: text must be a string")
        if self.config.echo:
            self._enqueue(session, "AgentTyping", {})
            self._schedule(
                session,
                0.3,
                "ChatMessage",
                {"name": session.agent_name, "text": f"You said: {text}"},
            )
        return Response(status_code=200)

    async def _chat_end(self, session: SimSession, body: dict[str, Any]) -> Response:
        if body.get("reason") != "client":
            raise _HttpError(400, 'ChatEnd: the ChatEndReason {"reason": "client"} is required')
        if session.state != "ended":
            self._enqueue(session, "ChatEnded", {"reason": "client", "attachedRecords": []})
            self._end(session, "client")
        return JSONResponse({"attachedRecords": []})

    async def _resync(self, session: SimSession, body: dict[str, Any]) -> Response:
        if not session.resync_pending:
            session.violations.append("ChasitorResyncState without a ReconnectSession")
        if not isinstance(body.get("organizationId"), str):
            raise _HttpError(400, "ChasitorResyncState: organizationId is required")
        session.resync_pending = False
        return Response(status_code=200)

    async def _accept(self, session: SimSession, body: dict[str, Any]) -> Response:
        return Response(status_code=200)

    _NOUNS: Final[
        dict[str, Callable[[Simulator, SimSession, dict[str, Any]], Awaitable[Response]]]
    ] = {
        "ChasitorInit": _init,
        "ChatMessage": _chat_message,
        "ChasitorTyping": _accept,
        "ChasitorNotTyping": _accept,
        "ChasitorSneakPeek": _accept,
        "CustomEvent": _accept,
        "ChatEnd": _chat_end,
        "ChasitorResyncState": _resync,
    }

    # -- Visitor ----------------------------------------------------------------------------------

    async def availability(self, request: Request) -> Response:
        version = self._api_version(request)
        query = request.query_params
        org, deployment = query.get("org_id"), query.get("deployment_id")
        if not org or not deployment:
            raise _HttpError(400, "org_id and deployment_id are required")
        if self.config.organization_id not in (None, org):
            raise _HttpError(400, f"unknown org_id {org!r}")
        # The array encoding is not documented: accept "[a,b]", "a,b" and "a".
        ids = [i.strip() for i in query.get("Availability.ids", "").strip("[]").split(",")]
        results: list[dict[str, Any]] = []
        for button in filter(None, ids):
            result: dict[str, Any] = {"id": button}
            if self.is_available(button):
                result["isAvailable"] = True  # absent means false (§3.15)
            if query.get("Availability.needEstimatedWaitTime") == "1" and version >= 47:
                wait = self.config.estimated_wait
                result["estimatedWaitTime"] = -1 if wait is None else wait
            results.append(result)
        return JSONResponse(
            {"messages": [{"type": "Availability", "message": {"results": results}}]}
        )


async def _wait_or_disconnect(
    request: Request, wait: Callable[[], Awaitable[Any]], seconds: float
) -> bool:
    """Run ``wait`` for at most ``seconds``; ``False`` if the client disconnected meanwhile."""
    gone = False

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                scope.cancel()
                return

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(watch, task_group.cancel_scope)
        with anyio.move_on_after(seconds):
            await wait()
        task_group.cancel_scope.cancel()
    return not gone


def _agent_id(name: str) -> str:
    return "005" + uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:15]


# -- the control API ------------------------------------------------------------------------------


def _describe_session(session: SimSession) -> dict[str, Any]:
    init = session.init
    return {
        "id": session.id,
        "state": session.state,
        "agent": session.agent_name,
        "end_reason": session.end_reason,
        "visitor_name": init.visitor_name if init else None,
        "button": init.button_id if init else None,
        "language": init.language if init else None,
        "prechat": {d.label: d.value for d in init.prechat_details} if init else {},
        "received": [
            {"noun": r.noun, "body": r.body, "sequence": r.sequence} for r in session.received
        ],
        "violations": list(session.violations),
        "reconnects": session.reconnects,
        "duplicates_ignored": session.duplicates_ignored,
    }


def create_app(simulator: Simulator) -> Starlette:
    """The ASGI app: the Chat REST API under ``/chat/rest``, the control API under ``/_control``."""

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except _HttpError as exc:
                return PlainTextResponse(exc.text, status_code=exc.status)

        return endpoint

    async def control_sessions(request: Request) -> Response:
        return JSONResponse([_describe_session(s) for s in simulator.sessions.values()])

    async def control_session(request: Request) -> Response:
        session = _lookup(request)
        return JSONResponse(_describe_session(session))

    def _lookup(request: Request) -> SimSession:
        try:
            session = simulator.session(request.path_params["handle"])
        except KeyError:
            raise _HttpError(404, "no such session") from None
        simulator._release_due(session)
        return session

    async def control_action(request: Request) -> Response:
        session = _lookup(request)
        action = request.path_params["action"]
        body = await Simulator._json_body(request, optional=True)
        if action == "join":
            simulator.join(session, _opt_str(body, "name"))
        elif action == "say":
            simulator.say(session, _req_str(body, "text"))
        elif action == "typing":
            simulator.typing(session, bool(body.get("typing", True)))
        elif action == "transfer":
            simulator.transfer(session, _req_str(body, "name"))
        elif action == "end":
            simulator.end(session, _opt_str(body, "reason") or "agent")
        elif action == "raw":
            payload = body.get("message", {})
            if not isinstance(payload, dict):
                raise _HttpError(400, "message must be an object")
            simulator.push_raw(session, _req_str(body, "type"), payload)
        elif action == "fault":
            try:
                fault = SimFault(_req_str(body, "kind"))
            except ValueError:
                kinds = ", ".join(f.value for f in SimFault)
                raise _HttpError(400, f"kind: expected one of {kinds}") from None
            options = {k: v for k, v in body.items() if k != "kind"}
            simulator.inject(session, fault, **options)
        else:
            raise _HttpError(404, f"unknown action {action!r}")
        return JSONResponse(_describe_session(session))

    async def control_broadcast(request: Request) -> Response:
        """One action for every live session (``join`` the queued ones, ``say``, ``end``):
        drives thousands of sessions with one request, e.g. from a benchmark."""
        body = await Simulator._json_body(request)
        action = _req_str(body, "action")
        count = 0
        for session in list(simulator.sessions.values()):
            simulator._release_due(session)
            if action == "join" and session.state == "queued":
                simulator.join(session, _opt_str(body, "name"))
            elif action == "say" and session.state == "chatting":
                simulator.say(session, _req_str(body, "text"))
            elif action == "end" and session.state in ("queued", "chatting"):
                simulator.end(session)
            else:
                continue
            count += 1
        return JSONResponse({"sessions": count})

    async def control_availability(request: Request) -> Response:
        body = await Simulator._json_body(request)
        available = body.get("available")
        if not isinstance(available, bool):
            raise _HttpError(400, "available must be true or false")
        simulator.set_available(available, _opt_str(body, "button"))
        return JSONResponse(
            {
                "default_available": simulator.config.default_available,
                "availability": simulator.config.availability,
            }
        )

    rest = "/chat/rest"
    routes = [
        Route(f"{rest}/System/SessionId", guarded(simulator.session_id), methods=["GET"]),
        Route(
            f"{rest}/System/SessionId/{{key:path}}",
            guarded(simulator.delete_session),
            methods=["DELETE"],
        ),
        Route(f"{rest}/System/Messages", guarded(simulator.messages), methods=["GET"]),
        Route(f"{rest}/System/ReconnectSession", guarded(simulator.reconnect), methods=["GET"]),
        Route(f"{rest}/Chasitor/{{noun}}", guarded(simulator.chasitor), methods=["POST"]),
        Route(f"{rest}/Visitor/Availability", guarded(simulator.availability), methods=["GET"]),
        Route("/_control/sessions", guarded(control_sessions), methods=["GET"]),
        Route("/_control/sessions/{handle}", guarded(control_session), methods=["GET"]),
        Route("/_control/sessions/{handle}/{action}", guarded(control_action), methods=["POST"]),
        Route("/_control/availability", guarded(control_availability), methods=["POST"]),
        Route("/_control/broadcast", guarded(control_broadcast), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _req_str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _HttpError(400, f"{name}: a non-empty string is required")
    return value


def _opt_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _HttpError(400, f"{name}: expected a string")
    return value


# -- the in-process controller (implements the conformance kit's AgentController) -----------------


class LiveAgentController:
    """Drives a :class:`Simulator` in process: the simulated agent, availability, faults.

    Implements :class:`handoff_adapters.testing.AgentController`; session handles are the
    simulator's session ids.
    """

    #: The kit's faults this simulator can inject.
    faults: frozenset[Fault] = frozenset(Fault)

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._claimed: set[str] = set()

    async def next_session(self) -> str:
        """The next session that sent ChasitorInit and was not handed out yet (creation order)."""
        while True:
            for session in self.simulator.sessions.values():
                if session.id not in self._claimed and session.init is not None:
                    self._claimed.add(session.id)
                    return session.id
            await self.simulator.wait_changed()

    def _session(self, handle: str) -> SimSession:
        session = self.simulator.session(handle)
        self.simulator._release_due(session)
        return session

    async def join(self, session: str, agent_name: str) -> None:
        self.simulator.join(self._session(session), agent_name)

    async def say(self, session: str, text: str) -> None:
        self.simulator.say(self._session(session), text)

    async def typing(self, session: str, typing: bool) -> None:
        self.simulator.typing(self._session(session), typing)

    async def transfer(self, session: str, agent_name: str) -> None:
        self.simulator.transfer(self._session(session), agent_name)

    async def end(self, session: str) -> None:
        self.simulator.end(self._session(session))

    async def received(self, session: str) -> list[str]:
        return self._session(session).texts

    async def typing_received(self, session: str) -> list[bool]:
        return [
            r.noun == "ChasitorTyping"
            for r in self._session(session).received
            if r.noun in ("ChasitorTyping", "ChasitorNotTyping")
        ]

    async def ended_by_user(self, session: str) -> bool:
        return self._session(session).end_reason == "client"

    async def set_available(self, available: bool) -> None:
        self.simulator.set_available(available)

    async def violations(self, session: str) -> list[str]:
        return list(self._session(session).violations)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever the simulator changes and at
        least every 0.2 s (scheduled agent actions are released by looking)."""
        for session in self.simulator.sessions.values():
            self.simulator._release_due(session)
        while not predicate():
            with anyio.move_on_after(0.2):
                await self.simulator.wait_changed()
            for session in self.simulator.sessions.values():
                self.simulator._release_due(session)

    async def inject(self, session: str, fault: Fault | SimFault, **options: Any) -> None:
        if isinstance(fault, Fault):
            fault, defaults = _KIT_FAULTS[fault]
            options = {**defaults, **options}
        self.simulator.inject(self._session(session), fault, **options)


#: The conformance kit's faults in Live Agent terms.
_KIT_FAULTS: Final[dict[Fault, tuple[SimFault, dict[str, Any]]]] = {
    Fault.RECONNECT: (SimFault.RECONNECT, {}),
    Fault.SERVER_ERROR: (SimFault.SERVER_ERROR, {}),
    Fault.DROP_STREAM: (SimFault.DROP_POLL, {}),
    Fault.DROP_SEND: (SimFault.DROP_POST, {}),
    Fault.REPEAT: (SimFault.REPEAT, {}),
    Fault.DELAY: (SimFault.DELAY, {"seconds": 0.5}),
    Fault.SESSION_LOST: (SimFault.SESSION_LOST, {}),
}
