"""The Live Agent agent backend: :class:`handoff_core.ports.AgentBackend` over the Chat REST API.

Protocol reference: ``../shared/protocols/liveagent.md`` (cited below as §n).

* :meth:`LiveAgentBackend.open` runs ``System/SessionId`` then ``Chasitor/ChasitorInit`` and returns
  the cursor; it never waits for an agent.
* :meth:`LiveAgentBackend.events` is the ``System/Messages`` long poll: exactly one poll open per
  session, ``ack`` starting at -1 and advanced only from a 200's ``sequence`` (a 204 re-polls with
  the same ack at once), batches de-duplicated by sequence and handled in order, the read timeout
  ``clientPollTimeout`` plus a margin, transport errors retried with backoff and the same ack.
* POSTs are serialized per session and carry ``X-LIVEAGENT-SEQUENCE`` = the core's ``ordinal``
  minus a base that a 503 reconnect moves (so a retried effect reuses its number, §4.3).
* 503 on any call runs the documented reconnect (§7): ``ReconnectSession`` with the last offset,
  the new affinity, sequence reset, ``ChasitorSessionData``, ``ChasitorResyncState``, and only then
  the POSTs that were held back.

The cursor (key, affinity, ack, last processed sequence, offset, reconnect epoch, sequence base,
joined) is everything needed to resume the poll in another process. The in-process ``_Live``
objects are a cache of it, plus locks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Final

import anyio
import attrs
import httpx

from handoff_adapters._http import HttpClients
from handoff_adapters.liveagent import wire
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import RemoteProtocolError

__all__ = ["LiveAgentBackend", "LiveAgentConfig", "LiveAgentError"]

log = logging.getLogger("handoff.liveagent")

#: Message types we know and deliberately do not turn into core events (§5, §6.11 to §6.16).
IGNORED_TYPES: Final = frozenset(
    {
        "CustomEvent",
        "NewVisitorBreadcrumb",
        "SensitiveDataRules",
        "FileTransfer",
        "RichMessage",
        "AgentJoinedConference",
        "AgentLeftConference",
        "ChatResumedAfterTransfer",
        "Availability",
        "ReconnectSession",
        "SwitchServer",
    }
)
#: Pre-chat keys (case-insensitive) that fill Contact fields when no entities are configured.
CONTACT_FIELDS: Final = {
    "firstname": "FirstName",
    "lastname": "LastName",
    "email": "Email",
    "phone": "Phone",
}
#: The longest bot transcript handed to the agent as a pre-chat detail.
TRANSCRIPT_LIMIT: Final = 2000


class LiveAgentError(Exception):
    """A Live Agent call failed (HTTP status or transport); the message never holds secrets."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _normalize_endpoint(endpoint: str) -> str:
    base = endpoint.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = f"https://{base}"
    # The setup page shows ".../chat/rest/"; accept the host alone too.
    if not base.endswith("/chat/rest"):
        base = base.removesuffix("/chat") + "/chat/rest"
    return base


@attrs.frozen(kw_only=True)
class LiveAgentConfig:
    """Where and how to reach one Live Agent deployment."""

    #: The "Chat API Endpoint" (``https://<host>/chat/rest/`` from Setup) or just its host.
    endpoint: str = attrs.field(converter=_normalize_endpoint)
    organization_id: str
    deployment_id: str
    button_id: str
    api_version: int = 47  # ≥ 47 for estimatedWaitTime, ≥ 37 for ReconnectSession (§1)
    visitor_name: str = "Visitor"
    user_agent: str = "handoff/0.1 (bot-to-agent handoff)"
    screen_resolution: str = "n/a"  # what Salesforce's own SDK sends when it has none
    #: Records to find or create from the pre-chat values; ``None``: look up a Contact by the
    #: ``FirstName``/``LastName``/``Email``/``Phone`` pre-chat values, creating nothing.
    entities: tuple[wire.Entity, ...] | None = None
    #: Give the agent the recent bot transcript as a pre-chat detail.
    send_transcript: bool = True
    #: Added to ``clientPollTimeout`` for the poll's read timeout (§4.4).
    poll_margin: float = 10.0
    #: Attempts after the first for transport errors and 5xx, and the first backoff (doubling).
    retries: int = 4
    backoff: float = 0.5
    #: How long a user message waits for ChatEstablished (the core already holds them; §2).
    establish_wait: float = 30.0
    #: Pause after each ChatMessage: bursts can be dropped silently (observed, §3.4).
    message_gap: float = 0.015


@attrs.define(kw_only=True, eq=False)
class _Live:
    """The in-process state of one session: the cursor's values plus locks and signals."""

    session: str
    key: str = attrs.field(repr=False)
    affinity: str = attrs.field(repr=False)
    session_id: str
    poll_timeout: int
    ack: int = -1
    last_sequence: int = -1
    offset: int = 0
    epoch: int = 0
    sequence_base: int = 0
    last_ordinal: int = 0
    joined: bool = False
    ended: bool = False
    polling: bool = False
    #: Bumped by every reconnect, so the poller reports the new cursor.
    generation: int = 0
    poll_count: int = 0
    post_lock: anyio.Lock = attrs.field(factory=anyio.Lock, repr=False)
    reconnect_lock: anyio.Lock = attrs.field(factory=anyio.Lock, repr=False)
    established: anyio.Event = attrs.field(factory=anyio.Event, repr=False)
    #: The batch the reconnect procedure polled, left for the poller to deliver.
    carry: wire.Messages | None = attrs.field(default=None, repr=False)

    def cursor(self, **overrides: ev.Scalar) -> dict[str, ev.Scalar]:
        values: dict[str, ev.Scalar] = {
            "key": self.key,
            "affinity": self.affinity,
            "id": self.session_id,
            "poll_timeout": self.poll_timeout,
            "ack": self.ack,
            "sequence": self.last_sequence,
            "offset": self.offset,
            "epoch": self.epoch,
            "sequence_base": self.sequence_base,
            "last_ordinal": self.last_ordinal,
            "joined": self.joined,
        }
        values.update(overrides)
        return values

    @classmethod
    def from_cursor(cls, session: str, cursor: Mapping[str, ev.Scalar]) -> _Live:
        def get(name: str, kind: type[Any]) -> Any:
            value = cursor.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise RemoteProtocolError(
                    f"Live Agent cursor: {name!r} missing or not {kind.__name__}"
                )
            return value

        live = cls(
            session=session,
            key=get("key", str),
            affinity=get("affinity", str),
            session_id=get("id", str),
            poll_timeout=get("poll_timeout", int),
            ack=get("ack", int),
            last_sequence=get("sequence", int),
            offset=get("offset", int),
            epoch=get("epoch", int),
            sequence_base=get("sequence_base", int),
            last_ordinal=get("last_ordinal", int),
            joined=get("joined", bool),
        )
        if live.joined:
            live.established.set()
        return live


class LiveAgentBackend:
    """Salesforce Live Agent (legacy Chat) as an :class:`~handoff_core.ports.AgentBackend`.

    ``http`` is shared and bounded (long polls over shards keyed by session, POSTs over a small
    client); pass ``transport=httpx.MockTransport(...)`` (or respx) in tests. Close with
    :meth:`aclose` or ``async with``.
    """

    name = "liveagent"
    _unknown_types_logged: ClassVar[set[str]] = set()

    def __init__(
        self,
        config: LiveAgentConfig,
        *,
        http: HttpClients | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "liveagent",
    ) -> None:
        self.config = config
        self.name = name
        self._owns_http = http is None
        # Measured (benchmarks/liveagent_concurrency.py, 1,000 concurrent polls): CPU per
        # delivered message is 35 ms with 1 client, 4.0 ms with 32, 1.3 ms with 256 (about 4
        # polls per client) and 1.2 ms with one client each; so 256 lazily created shards.
        self._http = http if http is not None else HttpClients(shards=256, transport=transport)
        self._base = config.endpoint
        self._live: dict[str, _Live] = {}
        #: Counters for monitoring: polls, batches, duplicate_batches, reconnects, retries…
        self.stats: dict[str, int] = {}

    async def aclose(self) -> None:
        self._live.clear()
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> LiveAgentBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    # -- the port ---------------------------------------------------------------------------------

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        buttons = [t.value for t in request.targets if t.kind == "button"] or [
            self.config.button_id
        ]
        for _ in range(2):  # a SwitchServer answer moves us to the org's new host once
            params = {
                "org_id": self.config.organization_id,
                "deployment_id": self.config.deployment_id,
                # One id is unambiguous; for several the encoding is UNCONFIRMED (§3.15).
                "Availability.ids": ",".join(buttons),
                "Availability.needEstimatedWaitTime": "1",
            }
            response = await self._send(
                "GET", "Visitor/Availability", headers=self._headers(), params=params
            )
            if response.status_code != 200:
                raise _status_error("Visitor/Availability", response)
            result = wire.parse_availability(
                wire.decode_json(response.content, "Visitor/Availability")
            )
            if isinstance(result, wire.SwitchServer):
                self._base = _normalize_endpoint(result.new_url)
                log.warning("Live Agent moved this org to %s", self._base)
                continue
            return any(r.is_available for r in result.results)
        raise LiveAgentError("Visitor/Availability: the server kept switching hosts")

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        headers = self._headers(affinity="null")  # the literal string, before a session exists
        response = await self._send("GET", "System/SessionId", headers=headers)
        if response.status_code != 200:
            raise _status_error("System/SessionId", response)
        session = wire.parse_session_id(wire.decode_json(response.content, "System/SessionId"))
        live = _Live(
            session=request.session,
            key=session.key,
            affinity=session.affinity_token,
            session_id=session.id,
            poll_timeout=session.poll_timeout,
        )
        self._live[request.session] = live
        body = self.chasitor_init(request.context, session.id)
        await self._post(live, "ChasitorInit", body.to_wire(), ordinal=request.ordinal)
        return live.cursor()

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        live = self._live_for(message.session, conversation.agent_cursor)
        if not live.joined:
            # The core only forwards once the agent joined; sending earlier gets a 500 (§2).
            with anyio.move_on_after(self.config.establish_wait):
                await live.established.wait()
            if not live.joined:
                raise LiveAgentError("Chasitor/ChatMessage: no agent has joined the chat yet")
        await self._post(live, "ChatMessage", {"text": message.text}, ordinal=message.ordinal)
        if self.config.message_gap:
            await anyio.sleep(self.config.message_gap)

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None:
        live = self._live_for(request.session, conversation.agent_cursor)
        noun = "ChasitorTyping" if request.typing else "ChasitorNotTyping"
        await self._post(live, noun, {}, ordinal=request.ordinal)

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        live = self._live.pop(request.session, None)
        if live is None and conversation.agent_cursor is not None:
            live = _Live.from_cursor(request.session, conversation.agent_cursor)
        if live is None or request.peer_closed or live.ended:
            return
        live.ended = True
        try:
            await self._post(live, "ChatEnd", {"reason": "client"}, ordinal=request.ordinal)
        except LiveAgentError as exc:
            if exc.status != 403:  # "ChatEnd can raise a 403 if the agent already ended" (§3.7)
                raise

    async def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        live = self._live.get(session)
        if live is None:
            live = self._live[session] = _Live.from_cursor(session, cursor)
        if live.polling:
            raise RuntimeError(f"session {session!r} is already being polled in this process")
        live.polling = True
        try:
            async for event in self._follow(live):
                yield event
        except RemoteProtocolError:
            await self._abandon(live)
            raise
        finally:
            live.polling = False

    # -- the long poll ----------------------------------------------------------------------------

    async def _follow(self, live: _Live) -> AsyncIterator[ev.AgentEvent]:
        failures = 0
        generation = live.generation
        while not live.ended:
            if live.carry is not None:
                batch, live.carry = live.carry, None
                async for event in self._batch(live, batch):
                    yield event
                generation = live.generation
                continue
            if live.generation != generation:
                generation = live.generation  # reconnected: the stored cursor must follow
                yield self._event(ev.AgentCursorAdvanced, live)
            affinity = live.affinity
            try:
                status, body = await self._poll(live)
            except httpx.TransportError as exc:  # timeouts included; same ack, after a pause
                failures += 1
                self._count("poll_errors")
                if failures > self.config.retries:
                    yield self._failure(live, f"Live Agent unreachable: {_transport(exc)}")
                    return
                await anyio.sleep(self._backoff(failures))
                continue
            if status == 204:
                failures = 0
                continue  # nothing new: poll again at once with the same ack
            if status == 200:
                failures = 0
                batch = wire.parse_messages(wire.decode_json(body, "System/Messages"))
                async for event in self._batch(live, batch):
                    yield event
                continue
            if status == 503:
                await self._reconnect(live, affinity)
                continue
            if status == 403:
                live.ended = True
                yield self._failure(live, "Live Agent: the chat session is no longer valid (403)")
                return
            if status == 409:
                live.ended = True
                yield self._failure(
                    live, "Live Agent: the chat was terminated (409, duplicate long poll)"
                )
                return
            if status >= 500 and failures < self.config.retries:
                failures += 1
                self._count("poll_errors")
                await anyio.sleep(self._backoff(failures))
                continue
            live.ended = True
            yield self._failure(live, f"Live Agent: System/Messages answered {status}")
            return

    async def _poll(self, live: _Live) -> tuple[int, bytes]:
        client = self._http.stream(live.session)
        params = {"ack": str(live.ack), "pc": str(live.poll_count)}
        live.poll_count += 1  # "pc": a poll counter from 0 that real clients send (§3.3)
        read = live.poll_timeout + self.config.poll_margin
        timeout = httpx.Timeout(10.0, read=read)
        self._count("polls")
        async with client.stream(
            "GET",
            f"{self._base}/System/Messages",
            params=params,
            headers=self._headers(live),
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                await response.aclose()
                return response.status_code, b""
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > wire.MAX_BODY_BYTES:
                raise RemoteProtocolError(
                    f"System/Messages: response body of {declared} bytes is too large"
                )
            body = bytearray()
            too_large = False
            # Stop reading by cancelling, not by breaking out: the cancellation starts inside
            # httpx's innermost stream generator, so every level of it finishes properly.
            with anyio.CancelScope() as reading:
                async for chunk in response.aiter_bytes():
                    if too_large:
                        continue
                    body += chunk
                    if len(body) > wire.MAX_BODY_BYTES:
                        too_large = True
                        reading.cancel()
            if too_large:
                raise RemoteProtocolError(
                    f"System/Messages: response body larger than {wire.MAX_BODY_BYTES} bytes"
                )
            return 200, bytes(body)

    async def _batch(self, live: _Live, batch: wire.Messages) -> AsyncIterator[ev.AgentEvent]:
        self._count("batches")
        if batch.sequence <= live.last_sequence:
            # Delivered again (our earlier ack was lost, or the server repeated itself): it was
            # handled already. Acknowledge it so the server moves on (§4.2).
            self._count("duplicate_batches")
            live.ack = max(live.ack, batch.sequence)
            return
        previous = {"ack": live.ack, "sequence": live.last_sequence, "offset": live.offset}
        kinds = {m.type for m in batch.messages}
        # Both in one batch can arrive in the wrong order and leave the indicator stuck (§6.5).
        skip_typing = {"AgentTyping", "AgentNotTyping"} <= kinds
        pending: list[ev.AgentEvent] = []
        for index, message in enumerate(batch.messages):
            if skip_typing and message.type == "AgentTyping":
                continue
            peer_id = f"{live.epoch}:{batch.sequence}:{index}"
            event = await self._translate(live, message, peer_id, previous)
            if event is not None:
                pending.append(event)
            if live.ended:
                break  # nothing after the end of the chat matters
        live.ack = live.last_sequence = batch.sequence
        if batch.offset:  # absent on some responses: keep the last one we had (§3.3)
            live.offset = batch.offset
        # Only the batch's last event carries the advanced ack: a crash before it re-polls the
        # batch, and the core drops what it already saw by peer_id.
        if pending:
            pending[-1] = attrs.evolve(pending[-1], cursor=live.cursor())
        else:
            pending.append(self._event(ev.AgentCursorAdvanced, live))
        for event in pending:
            yield event

    async def _translate(
        self,
        live: _Live,
        message: wire.Message,
        peer_id: str,
        previous: Mapping[str, ev.Scalar],
    ) -> ev.AgentEvent | None:
        where = "System/Messages"
        payload = wire.parse_payload(message, where)

        def make(cls: type[ev.AgentEvent], **fields: Any) -> ev.AgentEvent:
            return self._event(cls, live, peer_id=peer_id, cursor=live.cursor(**previous), **fields)

        match message.type:
            case "ChatRequestSuccess":
                return make(
                    ev.AgentAccepted,
                    queue_position=_position(payload.queue_position),
                    estimated_wait=_wait(payload.estimated_wait_time),
                )
            case "QueueUpdate":
                return make(
                    ev.QueueUpdated,
                    queue_position=_position(payload.position),
                    estimated_wait=_wait(payload.estimated_wait_time),
                )
            case "ChatEstablished":
                live.joined = True
                live.established.set()
                return make(ev.AgentJoined, agent_name=payload.name)
            case "ChatMessage":
                return make(ev.AgentMessage, text=payload.text)
            case "AgentTyping" | "AgentNotTyping":
                return make(ev.AgentTyping, typing=message.type == "AgentTyping")
            case "ChatTransferred":
                return make(ev.AgentTransferred, agent_name=payload.name)
            case "TransferToButtonInitiated":  # undocumented: a transfer to a queue (§6.16)
                return make(ev.AgentTransferred, agent_name="")
            case "AgentDisconnect":
                # "the chat session is still active … a new agent may accept" (§6.6): not an end.
                log.info("Live Agent session %s: the agent disconnected", live.session)
                return None
            case "ChatEnded":
                live.ended = True
                return make(ev.AgentEnded, reason=payload.reason)
            case "ChatRequestFail":
                live.ended = True
                if live.joined:  # the only agent went offline after joining (observed, §6.2)
                    return make(ev.AgentEnded, reason=f"request failed: {payload.reason}")
                reason = (
                    ev.RejectReason.NO_AGENT_AVAILABLE
                    if payload.reason == "Unavailable"
                    else ev.RejectReason.ERROR
                )
                return make(
                    ev.TransferRejected,
                    reason=reason,
                    description=f"Live Agent refused the chat request ({payload.reason})",
                )
            case "ChasitorSessionData":
                return None  # the reconnect procedure already answered it (ChasitorResyncState)
            case kind if kind in IGNORED_TYPES:
                log.debug("Live Agent session %s: %s ignored", live.session, kind)
                return None
            case kind:
                if kind not in self._unknown_types_logged:
                    self._unknown_types_logged.add(kind)
                    log.warning("Live Agent: unknown message type %r skipped", kind[:80])
                return None

    def _event(self, cls: type[ev.AgentEvent], live: _Live, **fields: Any) -> ev.AgentEvent:
        fields.setdefault("cursor", live.cursor())
        return cls(at=_now(), session=live.session, **fields)

    def _failure(self, live: _Live, description: str) -> ev.AgentEvent:
        """Before an agent joined the transfer failed; after, the session is lost."""
        live.ended = True
        if live.joined:
            return self._event(ev.BackendSessionLost, live, description=description)
        return self._event(
            ev.TransferRejected, live, reason=ev.RejectReason.ERROR, description=description
        )

    async def _abandon(self, live: _Live) -> None:
        """The server broke the protocol: try to end the chat so no agent waits on a ghost."""
        if live.ended:
            return
        live.ended = True
        with anyio.move_on_after(2.0, shield=True):
            try:
                headers = {
                    **self._headers(live),
                    "X-LIVEAGENT-SEQUENCE": str(live.last_ordinal + 1 - live.sequence_base),
                }
                await self._http.short.post(
                    f"{self._base}/Chasitor/ChatEnd", json={"reason": "client"}, headers=headers
                )
            except httpx.HTTPError:
                pass

    # -- reconnect (§7) ---------------------------------------------------------------------------

    async def _reconnect(self, live: _Live, stale_affinity: str) -> None:
        """The whole procedure, atomically per session: whoever hits the 503 first runs it;
        everyone else waits on the lock, then retries with the new affinity.

        It polls for ChasitorSessionData itself (rather than waiting for the poller, which may
        be blocked delivering an event to a conversation whose lock the waiting POST holds) and
        leaves the rest of that batch, un-acked, for the poller to deliver.
        """
        async with live.reconnect_lock:
            if live.affinity != stale_affinity or live.ended:
                return  # a concurrent request already reconnected
            self._count("reconnects")
            headers = self._headers(live, affinity="null")  # as in the documented example
            params = {"ReconnectSession.offset": str(live.offset)}
            response = await self._send(
                "GET", "System/ReconnectSession", headers=headers, params=params
            )
            if response.status_code != 200:
                live.ended = True
                raise _status_error("System/ReconnectSession", response)
            reconnect = wire.parse_reconnect(
                wire.decode_json(response.content, "System/ReconnectSession")
            )
            live.affinity = reconnect.affinity_token
            if reconnect.reset_sequence is not False:
                # The next POST carries 1 (UNCONFIRMED, §3.10): a POST cut off by the 503 is
                # re-sent with the new numbering.
                live.sequence_base = live.last_ordinal
            # The server numbers batches afresh: start from ack -1 (what IBM's client does,
            # UNCONFIRMED) and keep peer ids apart with a new epoch.
            live.ack = live.last_sequence = -1
            live.epoch += 1
            live.generation += 1
            batch = await self._first_batch(live)
            first = batch.messages[0].type if batch is not None and batch.messages else None
            if first != "ChasitorSessionData":
                log.warning(
                    "Live Agent session %s: no ChasitorSessionData after reconnecting", live.session
                )
            live.carry = batch
            await self._post(
                live,
                "ChasitorResyncState",
                {"organizationId": self.config.organization_id},
                ordinal=None,
            )

    async def _first_batch(self, live: _Live) -> wire.Messages | None:
        """The first batch after ReconnectSession (``None`` if the server had nothing)."""
        for attempt in range(1, self.config.retries + 2):
            try:
                status, body = await self._poll(live)
            except httpx.TransportError as exc:
                if attempt > self.config.retries:
                    raise LiveAgentError(f"System/Messages: {_transport(exc)}") from None
                await anyio.sleep(self._backoff(attempt))
                continue
            if status == 200:
                return wire.parse_messages(wire.decode_json(body, "System/Messages"))
            if status == 204:
                return None
            raise LiveAgentError(
                f"System/Messages answered {status} after reconnecting", status=status
            )
        return None

    # -- HTTP -------------------------------------------------------------------------------------

    def _headers(self, live: _Live | None = None, *, affinity: str | None = None) -> dict[str, str]:
        headers = {
            "X-LIVEAGENT-API-VERSION": str(self.config.api_version),
            "Accept": "application/json; charset=utf-8",
        }
        if live is not None:
            headers["X-LIVEAGENT-AFFINITY"] = affinity or live.affinity
            headers["X-LIVEAGENT-SESSION-KEY"] = live.key
        elif affinity is not None:
            headers["X-LIVEAGENT-AFFINITY"] = affinity
        return headers

    async def _send(
        self,
        method: str,
        resource: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A short request, retried on transport errors and 5xx other than 503."""
        attempt = 0
        while True:
            try:
                response = await self._http.short.request(
                    method, f"{self._base}/{resource}", headers=headers, params=params
                )
            except httpx.TransportError as exc:
                attempt += 1
                if attempt > self.config.retries:
                    raise LiveAgentError(f"{resource}: {_transport(exc)}") from None
            else:
                if response.status_code < 500 or response.status_code == 503:
                    return response
                attempt += 1
                if attempt > self.config.retries:
                    return response
            self._count("retries")
            await anyio.sleep(self._backoff(attempt))

    async def _post(
        self, live: _Live, noun: str, body: Mapping[str, Any], *, ordinal: int | None
    ) -> None:
        """POST ``Chasitor/<noun>``. ``ordinal`` ``None``: no sequence header, not serialized."""
        if ordinal is None:
            await self._post_once(live, noun, body, None)
            return
        async with live.post_lock:
            await self._post_once(live, noun, body, ordinal)

    async def _post_once(
        self, live: _Live, noun: str, body: Mapping[str, Any], ordinal: int | None
    ) -> None:
        attempt = reconnects = 0
        url = f"{self._base}/Chasitor/{noun}"
        while True:
            affinity = live.affinity
            headers = self._headers(live)
            if ordinal is not None:
                headers["X-LIVEAGENT-SEQUENCE"] = str(ordinal - live.sequence_base)
            try:
                response = await self._http.short.post(url, json=dict(body), headers=headers)
            except httpx.TransportError as exc:
                # Same number on the retry: the server drops it if the first one got through.
                attempt += 1
                if attempt > self.config.retries:
                    raise LiveAgentError(f"Chasitor/{noun}: {_transport(exc)}") from None
                self._count("retries")
                await anyio.sleep(self._backoff(attempt))
                continue
            if response.is_success:
                if ordinal is not None:
                    live.last_ordinal = max(live.last_ordinal, ordinal)
                return
            if response.status_code == 503 and reconnects < 3 and noun != "ChasitorResyncState":
                reconnects += 1
                await self._reconnect(live, affinity)
                continue
            if response.status_code >= 500 and response.status_code != 503:
                attempt += 1
                if attempt <= self.config.retries:
                    self._count("retries")
                    await anyio.sleep(self._backoff(attempt))
                    continue
            raise _status_error(f"Chasitor/{noun}", response)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.config.backoff * 2.0 ** (attempt - 1), 8.0)
        return delay * (0.5 + random.random() / 2)  # jitter: sessions must not retry in step

    def _live_for(self, session: str, cursor: Mapping[str, ev.Scalar] | None) -> _Live:
        live = self._live.get(session)
        if live is None:
            if cursor is None:
                raise LiveAgentError(f"no Live Agent session {session!r} to talk to")
            live = self._live[session] = _Live.from_cursor(session, cursor)
        return live

    # -- ChasitorInit -----------------------------------------------------------------------------

    def chasitor_init(self, context: fx.HandoffContext, session_id: str) -> wire.ChasitorInit:
        """The ChasitorInit body for this handoff: pre-chat details and entities from the
        conversation's pre-chat values (and the bot's variables and recent transcript as further
        details for the agent), the routing targets as button overrides."""
        config = self.config
        details = [
            wire.CustomDetail(label=key, value=_text(value), transcript_fields=())
            for key, value in context.prechat.items()
            if _text(value)  # empty values are refused by some orgs (observed, §3.2)
        ]
        # The bot's variables go with the conversation too (a pre-chat value of the same name
        # wins: it is what the user entered).
        details.extend(
            wire.CustomDetail(label=key, value=_text(value), transcript_fields=())
            for key, value in context.variables.items()
            if key not in context.prechat and _text(value)
        )
        details.append(wire.CustomDetail(label="Handoff reason", value=context.reason.value))
        if config.send_transcript and context.transcript:
            lines = [f"{entry.sender}: {entry.text}" for entry in context.transcript]
            details.append(
                wire.CustomDetail(
                    label="Bot transcript", value="\n".join(lines)[-TRANSCRIPT_LIMIT:]
                )
            )
        buttons = [t.value for t in context.targets if t.kind == "button"]
        agents = [t.value for t in context.targets if t.kind == "agent"]
        button = buttons[0] if buttons else config.button_id
        overrides: list[str] = [f"{agent}_{button}" for agent in agents]
        if overrides or len(buttons) > 1:
            overrides.extend(buttons or [button])
        return wire.ChasitorInit(
            organization_id=config.organization_id,
            deployment_id=config.deployment_id,
            button_id=button,
            session_id=session_id,
            user_agent=config.user_agent,
            language=context.language.replace("_", "-"),
            screen_resolution=config.screen_resolution,
            visitor_name=context.user_name or config.visitor_name,
            prechat_details=tuple(details),
            prechat_entities=self._entities(context.prechat),
            button_overrides=tuple(overrides),
            receive_queue_updates=True,
            is_post=True,
        )

    def _entities(self, prechat: Mapping[str, ev.Scalar]) -> tuple[wire.Entity, ...]:
        if self.config.entities is not None:
            return self.config.entities
        maps = [
            wire.EntityFieldsMap(
                field_name=CONTACT_FIELDS[key.lower()],
                label=key,  # by convention the label of the detail that fills the field
                do_find=key.lower() in ("email", "phone"),
                is_exact_match=True,
                do_create=False,
            )
            for key, value in prechat.items()
            if key.lower() in CONTACT_FIELDS and _text(value)
        ]
        if not maps:
            return ()
        contact = wire.Entity(
            entity_name="Contact",
            entity_fields_maps=tuple(maps),
            show_on_create=False,
            save_to_transcript="ContactId",
        )
        return (contact,)


def _text(value: ev.Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _position(value: int | None) -> int | None:
    # Omni-Channel routing always reports 0 (observed, §6.1): don't show "number 0".
    return value if value is not None and value > 0 else None


def _wait(value: float | None) -> float | None:
    return value if value is not None and value >= 0 else None  # -1: unknown (§8)


def _transport(exc: httpx.TransportError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _status_error(resource: str, response: httpx.Response) -> LiveAgentError:
    text = response.text.strip().replace("\n", " ")[:200] if response.content else ""
    detail = f": {text}" if text else ""
    return LiveAgentError(
        f"{resource} answered {response.status_code}{detail}", status=response.status_code
    )


def _now() -> float:
    return time.time()
