"""A :class:`~handoff_core.ports.SessionStore` on Redis (one server, or a Sentinel-watched group).

Built on ``coredis`` (anyio inside, so it runs on asyncio and trio).

**Layout.** One hash per conversation, ``{prefix}conv:{id}``:

* ``step``: the step, as decimal text (what the conditional save compares);
* ``body``: the JSON plain data of :mod:`handoff_core.serialization`, without the outbox and lease;
* ``outbox``: a JSON array of the outbox's effect keys, in order, and one field ``fx:{key}`` per
  effect holding its JSON;
* ``busy``: ``1`` while the conversation has an agent session or timers;
* ``lease_owner`` / ``lease_until``: the runtime's outbox lease, when set.

The outbox and lease live in their own fields so that ``mark_done`` and ``claim`` never decode and
re-encode the record inside Redis (Lua's cjson rounds floats to 14 digits and turns ``[]`` into
``{}``): the scripts only add and remove whole fields. A sorted set, ``{prefix}active``, holds the
ids of the active conversations (an outbox, an agent session or timers), read by :meth:`active`
in id order a page at a time.

``save``, ``mark_done`` and ``claim`` are each one Lua script (EVALSHA, loaded again when the
server lost it), so each is one atomic server-side step that also keeps the active set right:
two runtimes on the same Redis never both apply a step or take the same lease.

**Expiry.** With ``idle_ttl`` (seconds), a conversation that is no longer active expires that long
after its last change; an active one never expires (the scripts ``PERSIST`` it).

**Failover.** With ``sentinels`` and ``service_name`` the master is found through Sentinel and
found again after a failover. Every call is retried on a lost connection or a read-only replica
for up to ``retry_for`` seconds; the scripts make a retry safe (a save that was applied before its
reply was lost is recognised, a claim is renewable by its owner, ``mark_done`` is idempotent).
Redis replicates asynchronously: a step acknowledged by a master that dies before its replica got
it is lost; the outbox then performs that step's effects again (peers de-duplicate by ordinal and
``peer_id``). Use ``WAIT``-style durability on the server side (``min-replicas-to-write``) to
narrow that window.

**Secrets.** The records hold the adapters' cursors (session keys, access tokens, callback URLs):
protect the Redis server like a credential store (a password, TLS with ``rediss://``, a private
network). The password is read from an environment variable by the service and is never part of
this store's ``repr``, logs or errors; a password inside ``url`` is refused. This module logs ids
and counts, never the contents of a record.

Open the store (``await store.open()`` or ``async with RedisStore(...) as store``) in the task that
will close it (:meth:`aclose`): the client's connections run in a task group opened there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs
import coredis
import coredis.exceptions
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from coredis.connection import TCPLocation
from coredis.retry import NoRetryPolicy

from handoff_core.conversation import Conversation
from handoff_core.errors import HandoffError, LocalProtocolError
from handoff_core.ports import StaleConversation
from handoff_core.serialization import structure_conversation, unstructure_conversation

__all__ = ["MIN_SERVER_VERSION", "RedisStore", "RedisStoreError"]

log = logging.getLogger("handoff.store.redis")

T = TypeVar("T")

#: coredis speaks RESP3 only (Redis 6.0+); ``active`` pages with ``ZRANGE … BYLEX`` (6.2+).
MIN_SERVER_VERSION: Final = (6, 2)

#: Conversations per round trip while listing the active ones.
ACTIVE_PAGE: Final = 200

_SAVE = """
local stored = redis.call('HGET', KEYS[1], 'step')
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[2] == '' and exists) or (ARGV[2] ~= '' and stored ~= ARGV[2]) then
  if exists and redis.call('HGET', KEYS[1], 'saved_by') == ARGV[11] then
    return {1}  -- this very call, applied before its reply was lost: a retry
  end
  if stored then return {0, stored} end
  if exists then return {0, '?'} end
  return {0}
end
redis.call('DEL', KEYS[1])
local fields = {'step', ARGV[3], 'busy', ARGV[4], 'body', ARGV[5], 'outbox', ARGV[6],
  'saved_by', ARGV[11]}
if ARGV[7] ~= '' then fields[#fields + 1] = 'lease_owner'; fields[#fields + 1] = ARGV[8] end
if ARGV[9] ~= '' then fields[#fields + 1] = 'lease_until'; fields[#fields + 1] = ARGV[9] end
for i = 12, #ARGV, 2 do
  fields[#fields + 1] = 'fx:' .. ARGV[i]; fields[#fields + 1] = ARGV[i + 1]
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[4] == '1' or ARGV[6] ~= '[]' then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  if tonumber(ARGV[10]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[10]) end
end
return {1}
"""

_MARK_DONE = """
local raw = redis.call('HGET', KEYS[1], 'outbox')
if not raw then return 0 end
local done = {}
for i = 3, #ARGV do done[ARGV[i]] = true end
local kept, removed = {}, 0
for _, key in ipairs(cjson.decode(raw)) do
  if done[key] then
    redis.call('HDEL', KEYS[1], 'fx:' .. key)
    removed = removed + 1
  else
    kept[#kept + 1] = key
  end
end
if removed == 0 then return 0 end
if #kept == 0 then
  redis.call('HSET', KEYS[1], 'outbox', '[]')
  if redis.call('HGET', KEYS[1], 'busy') ~= '1' then
    redis.call('ZREM', KEYS[2], ARGV[1])
    if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  end
else
  redis.call('HSET', KEYS[1], 'outbox', cjson.encode(kept))
end
return removed
"""

_CLAIM = """
if redis.call('HGET', KEYS[1], 'step') ~= ARGV[1] then return false end
local outbox = redis.call('HGET', KEYS[1], 'outbox')
if not outbox or outbox == '[]' then return false end
local holder = redis.call('HGET', KEYS[1], 'lease_owner')
local held_until = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '')
if holder and holder ~= ARGV[2] and held_until and held_until > tonumber(ARGV[4]) then
  return false
end
redis.call('HSET', KEYS[1], 'lease_owner', ARGV[2], 'lease_until', ARGV[3])
return redis.call('HGETALL', KEYS[1])
"""

#: Worth retrying: the master went away, or what we reach is a replica (a failover is under way).
_TRANSIENT = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.ReadOnlyError,
    coredis.exceptions.PrimaryNotFoundError,
    coredis.exceptions.StalePrimaryError,
    TimeoutError,
    OSError,
)


class RedisStoreError(HandoffError):
    """Redis cannot be used as a store: unreachable, refused the password, too old, closed…"""


def _server_version(text: str) -> tuple[int, ...]:
    """``"7.0.15"`` → ``(7, 0, 15)``; anything unreadable → ``()``."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    return () if match is None else tuple(int(part) for part in match.groups() if part is not None)


def check_server_version(text: str, target: str) -> None:
    """Refuse a server older than :data:`MIN_SERVER_VERSION` (its ``redis_version``)."""
    found = _server_version(text)
    if found < MIN_SERVER_VERSION:
        needed = ".".join(map(str, MIN_SERVER_VERSION))
        raise RedisStoreError(
            f"{target}: Redis {text.strip() or '(unknown version)'} is too old; "
            f"the store needs Redis {needed} or later"
        )


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from the client's task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@attrs.define(eq=False)
class RedisStore:
    """Conversations in Redis; see the module docstring.

    Give either ``url`` (``redis://host:port/db`` or ``rediss://`` for TLS) or ``sentinels``
    (``[(host, port), …]``) with ``service_name``. ``password`` is passed separately (the service
    reads it from an environment variable) and is never shown.
    """

    url: str | None = None
    sentinels: Sequence[tuple[str, int]] = ()
    service_name: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    username: str | None = None
    prefix: str = "handoff:"
    #: Seconds after which a conversation that is no longer active expires (``None``: never).
    idle_ttl: float | None = None
    #: How long a call keeps retrying through a lost connection or a failover.
    retry_for: float = 15.0
    connect_timeout: float = 5.0
    stream_timeout: float = 10.0

    _client: Any = attrs.field(default=None, init=False, repr=False)
    _stack: AsyncExitStack | None = attrs.field(default=None, init=False, repr=False)
    _scripts: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    _closed: bool = attrs.field(default=False, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.url is None) == (not self.sentinels):
            raise ValueError("give either url or sentinels (with service_name)")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("redis", "rediss"):
                raise ValueError(f"url: expected redis:// or rediss://, got {parts.scheme!r}://")
            if parts.password is not None:
                raise ValueError("url: must not hold a password (pass it separately)")
        elif not self.service_name:
            raise ValueError("service_name: required with sentinels")
        if self.idle_ttl is not None and not (self.idle_ttl > 0 and math.isfinite(self.idle_ttl)):
            raise ValueError("idle_ttl: expected a positive number of seconds")

    @property
    def target(self) -> str:
        """What this store connects to, for errors and logs (never the password)."""
        if self.url is not None:
            return f"Redis at {self.url}"
        where = ", ".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"Redis master {self.service_name!r} via sentinels {where}"

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> RedisStore:
        """Connect and check the server (reachable, password accepted, recent enough)."""
        if self._closed:
            raise RedisStoreError(f"{self!r} is closed")
        if self._client is not None:
            return self
        stack = AsyncExitStack()
        try:
            client = await self._connect(stack)
            info = await client.info("server")
            check_server_version(str(info.get("redis_version", "")), self.target)
        except BaseException as exc:
            # The client's own teardown repeats the connection failure: report it once.
            with contextlib.suppress(BaseException):
                await stack.aclose()
            raise self._describe(exc) from None
        self._client, self._stack = client, stack
        self._scripts = {
            name: client.register_script(text)
            for name, text in (("save", _SAVE), ("mark_done", _MARK_DONE), ("claim", _CLAIM))
        }
        return self

    async def _connect(self, stack: AsyncExitStack) -> coredis.Redis[bytes]:
        options: dict[str, Any] = {
            "password": self.password,
            "username": self.username,
            "connect_timeout": self.connect_timeout,
            "stream_timeout": self.stream_timeout,
            "retry_policy": NoRetryPolicy(),  # retried here, with a deadline
        }
        if self.url is not None:
            client = coredis.Redis.from_url(self.url, decode_responses=False, **options)
            _close_buffers_on_failed_connect(client)
            return await stack.enter_async_context(client)
        # The sentinels themselves are asked without the password (theirs is configured apart).
        sentinel = coredis.Sentinel(
            [TCPLocation(host, port) for host, port in self.sentinels],
            connect_timeout=self.connect_timeout,
            stream_timeout=self.stream_timeout,
            decode_responses=False,
        )
        for watcher in sentinel.sentinels:
            _close_buffers_on_failed_connect(watcher)
        await stack.enter_async_context(sentinel)
        del options["retry_policy"]  # the primary's is NoRetryPolicy already
        primary = sentinel.primary_for(self.service_name or "", **options)
        _close_buffers_on_failed_connect(primary)
        return await stack.enter_async_context(primary)

    def _describe(self, exc: BaseException) -> BaseException:
        leaf = _leaf(exc)
        if isinstance(leaf, RedisStoreError | anyio.get_cancelled_exc_class()):
            return leaf
        if not isinstance(leaf, Exception):
            return exc
        if isinstance(
            leaf, coredis.exceptions.AuthenticationError | coredis.exceptions.AuthorizationError
        ):
            what = "the password was refused" if self.password else "a password is required"
        elif isinstance(leaf, coredis.exceptions.PrimaryNotFoundError):
            what = "no sentinel knows a master for this service"
        elif isinstance(leaf, ConnectionRefusedError) or "refused" in str(leaf).lower():
            what = "connection refused"
        else:
            what = f"{type(leaf).__name__}: {leaf}"
        return RedisStoreError(f"{self.target}: cannot connect: {what}")

    async def aclose(self) -> None:
        """Close the connections (idempotent); the store cannot be used afterwards."""
        self._closed = True
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:  # a connection that already died: nothing left to close
                log.debug("%s: closing: %s", self.target, type(_leaf(exc)).__name__)

    async def __aenter__(self) -> RedisStore:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the SessionStore port --------------------------------------------------------------------

    def _key(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}"

    @property
    def _active_key(self) -> str:
        return f"{self.prefix}active"

    async def load(self, conversation_id: str) -> Conversation | None:
        key = self._key(conversation_id)
        fields = await self._call(conversation_id, lambda c: c.hgetall(key))
        return _decode(conversation_id, fields) if fields else None

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        plain = unstructure_conversation(conversation)
        outbox = plain.pop("outbox", None) or []
        lease_owner, lease_until = plain.pop("lease_owner", None), plain.pop("lease_until", None)
        keys = [str(effect["key"]) for effect in outbox]
        if len(set(keys)) != len(keys):
            raise ValueError(f"conversation {conversation.id!r}: the outbox repeats an effect key")
        args: list[str] = [
            conversation.id,
            "" if expected_step is None else str(expected_step),
            str(conversation.step),
            "1" if plain.get("agent_session") or plain.get("timers") else "0",
            _json(plain),
            _json(keys),
            "" if lease_owner is None else "1",
            "" if lease_owner is None else str(lease_owner),
            "" if lease_until is None else repr(float(lease_until)),
            self._ttl(),
            uuid.uuid4().hex,  # this call's token: its retry is recognised as already applied
        ]
        for key, effect in zip(keys, outbox, strict=True):
            args += [key, _json(effect)]
        redis_keys = [self._key(conversation.id), self._active_key]
        result = await self._call(conversation.id, lambda c: self._script("save")(redis_keys, args))
        if int(result[0]) != 1:
            found = result[1].decode() if len(result) > 1 else None
            raise StaleConversation(
                f"conversation {conversation.id!r} is at step {found}, expected {expected_step}"
            )

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        if not effect_keys:
            return
        redis_keys = [self._key(conversation_id), self._active_key]
        args = [conversation_id, self._ttl(), *effect_keys]
        await self._call(conversation_id, lambda c: self._script("mark_done")(redis_keys, args))

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        redis_keys = [self._key(conversation_id)]
        args = [str(step), owner, repr(float(until)), repr(float(now))]
        found = await self._call(conversation_id, lambda c: self._script("claim")(redis_keys, args))
        if not found:
            return None
        flat = list(found)
        return _decode(conversation_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    async def active(self) -> AsyncIterator[Conversation]:
        """The active conversations, by id, a page at a time (a conversation saved meanwhile is
        read as it is then; one that stopped being active meanwhile is left out)."""
        after = b"-"
        while True:
            start = after
            ids: list[bytes] = list(
                await self._call(
                    "(active)",
                    lambda c, start=start: c.zrange(  # type: ignore[misc]
                        self._active_key,
                        start,
                        b"+",
                        sortby=coredis.PureToken.BYLEX,
                        offset=0,
                        count=ACTIVE_PAGE,
                    ),
                )
            )
            for raw_id in ids:
                conversation_id = raw_id.decode("utf-8", "replace")
                try:
                    conversation = await self.load(conversation_id)
                except LocalProtocolError as exc:
                    # One unreadable record must not stop every other conversation resuming.
                    log.warning("conversation %r skipped: %s", conversation_id, exc.message)
                    continue
                if conversation is not None and _is_active(conversation):
                    yield conversation
            if len(ids) < ACTIVE_PAGE:
                return
            after = b"(" + ids[-1]

    # -- introspection ----------------------------------------------------------------------------

    async def count(self) -> int:
        """How many conversations are active."""
        return int(await self._call("(active)", lambda c: c.zcard(self._active_key)))

    # -- calls ------------------------------------------------------------------------------------

    def _ttl(self) -> str:
        return "0" if self.idle_ttl is None else str(max(1, math.ceil(self.idle_ttl)))

    def _script(self, name: str) -> Any:
        return self._scripts[name]

    async def _call(
        self, conversation_id: str, command: Callable[[coredis.Redis[bytes]], Awaitable[T]]
    ) -> T:
        """Run ``command(client)``, retried through a lost connection or failover for up to
        ``retry_for`` seconds; a record Redis cannot work on is named."""
        client = self._client
        if client is None:
            raise RedisStoreError(
                f"{self!r} is closed" if self._closed else f"{self!r} is not open: await open()"
            )
        delay = 0.05
        last: BaseException | None = None
        with anyio.move_on_after(self.retry_for):
            while True:
                try:
                    return await command(client)
                except Exception as exc:
                    leaf = _leaf(exc)
                    if not isinstance(leaf, _TRANSIENT):
                        if isinstance(leaf, coredis.exceptions.ResponseError):
                            raise _unusable(conversation_id, leaf) from None
                        raise
                    last = leaf
                    log.info("%s: %s; retrying", self.target, type(leaf).__name__)
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise RedisStoreError(
            f"{self.target}: unreachable for {self.retry_for:g} s: {type(last).__name__}: {last}"
        )


def _close_buffers_on_failed_connect(client: coredis.Redis[bytes]) -> None:
    """coredis (6.9) leaves a connection's in-memory buffers open when it cannot connect or is
    discarded unused (their garbage collection then warns, in whatever code runs next): close
    them when the connection ends, and at the latest when it is collected."""
    pool: Any = client.connection_pool
    construct = getattr(pool, "_construct_connection", None)
    if construct is None:  # another coredis than the 6.x this works around: leave it alone
        return

    async def construct_closing() -> Any:
        connection = await construct()
        connection.__class__ = _closing_class(type(connection))
        return connection

    pool._construct_connection = construct_closing


_CLOSING: dict[type[Any], type[Any]] = {}


def _closing_class(base: type[Any]) -> type[Any]:
    if base in _CLOSING.values():
        return base
    if base not in _CLOSING:

        class ClosingConnection(base):  # type: ignore[misc]
            async def run(self, *args: Any, **kwargs: Any) -> None:
                try:
                    await super().run(*args, **kwargs)
                finally:
                    self._close_buffers()

            def _close_buffers(self) -> None:
                for value in list(vars(self).values()):
                    if isinstance(value, MemoryObjectSendStream | MemoryObjectReceiveStream):
                        value.close()

            def __del__(self) -> None:
                self._close_buffers()

        ClosingConnection.__name__ = ClosingConnection.__qualname__ = base.__name__
        _CLOSING[base] = ClosingConnection
    return _CLOSING[base]


def _unusable(conversation_id: str, exc: Exception) -> Exception:
    text = str(exc)
    if (
        isinstance(exc, coredis.exceptions.WrongTypeError)
        or "WRONGTYPE" in text
        or "cjson" in text
        or "user_script" in text
    ):
        # Redis' message names the operation, not the record's contents.
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        return LocalProtocolError(
            f"stored conversation {conversation_id!r} is not a handoff record ({first})"
        )
    return exc


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_active(conversation: Conversation) -> bool:
    return bool(conversation.outbox or conversation.agent_session or conversation.timers)


def _text(conversation_id: str, fields: dict[bytes, bytes], name: str) -> str:
    raw = fields.get(name.encode())
    if raw is None:
        raise LocalProtocolError(f"stored conversation {conversation_id!r} lacks field {name!r}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r}: field {name!r} is not UTF-8 text"
        ) from None


def _parse(conversation_id: str, fields: dict[bytes, bytes], name: str) -> Any:
    try:
        return json.loads(_text(conversation_id, fields, name))
    except json.JSONDecodeError as exc:
        # The position only: the text holds secrets.
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r}: field {name!r} is not valid JSON "
            f"(at character {exc.pos})"
        ) from None


def _decode(conversation_id: str, fields: dict[bytes, bytes]) -> Conversation:
    plain = _parse(conversation_id, fields, "body")
    if not isinstance(plain, dict):
        raise LocalProtocolError(f"stored conversation {conversation_id!r} is not a JSON object")
    step = _text(conversation_id, fields, "step")
    if not step.isdigit():
        raise LocalProtocolError(f"stored conversation {conversation_id!r}: step is not a number")
    keys = _parse(conversation_id, fields, "outbox")
    if keys == {}:  # an empty array written by Lua's cjson
        keys = []
    if not isinstance(keys, list):
        raise LocalProtocolError(f"stored conversation {conversation_id!r}: outbox is not a list")
    plain["step"] = int(step)
    plain["outbox"] = [_parse(conversation_id, fields, f"fx:{key}") for key in keys]
    owner = fields.get(b"lease_owner")
    plain["lease_owner"] = None if owner is None else _text(conversation_id, fields, "lease_owner")
    until = fields.get(b"lease_until")
    try:
        plain["lease_until"] = None if until is None else float(until)
    except ValueError:
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r}: lease_until is not a number"
        ) from None
    conversation = structure_conversation(plain)
    if conversation.id != conversation_id:
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r} holds the record of {conversation.id!r}"
        )
    return conversation
