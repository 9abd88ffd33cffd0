"""A persistent :class:`~handoff_core.ports.SessionStore` in one SQLite file (stdlib ``sqlite3``).

One table, one row per conversation: ``id`` (primary key), ``step``, ``active`` (1 while the
conversation has an outbox, an agent session or timers: what :meth:`SqliteStore.active` resumes,
read through an index), ``data`` (the JSON plain-data form of
:mod:`handoff_core.serialization`) and ``updated_at``. The conditional save is one statement,
``UPDATE … WHERE id = ? AND step = ?`` (or an ``INSERT`` that a present id ignores): its row count
decides, so two runtimes on the same file never both apply a step.

``sqlite3`` blocks, so every call runs in a worker thread (``anyio.to_thread``), one at a time per
store instance (a ``CapacityLimiter(1)``): it works on asyncio and trio. The file is in WAL mode
(readers never wait for the writer); several instances, in one process or several, may share it,
and a writer waits up to ``busy_timeout`` seconds for another's lock.

Durability: ``synchronous="NORMAL"`` (the default, with WAL) survives a crash of the process,
which is what the outbox needs; after a power loss the last steps may be rolled back and their
effects performed again (peers de-duplicate by ordinal and ``peer_id``). Use ``"FULL"`` to fsync
every step.

**Secrets.** The stored records hold the adapters' cursors: session keys, access tokens, callback
URLs. Protect the file like a credential: it is created with mode 0600 (owner only; SQLite gives
its ``-wal`` and ``-shm`` files the same), keep it on a private volume and out of backups that
others read. This module never logs the contents of a record, only ids and counts.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from handoff_core.conversation import Conversation
from handoff_core.errors import HandoffError, LocalProtocolError
from handoff_core.ports import StaleConversation
from handoff_core.serialization import structure_conversation, unstructure_conversation

__all__ = ["SCHEMA_VERSION", "SqliteStore", "SqliteStoreError"]

log = logging.getLogger("handoff.store.sqlite")

T = TypeVar("T")

#: The table layout this module reads and writes; a file with another is refused on open.
SCHEMA_VERSION: Final = 1

#: Conversations per round trip to the worker thread while listing the active ones.
ACTIVE_PAGE: Final = 200

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

_CREATE = (
    "CREATE TABLE handoff_store (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        step INTEGER NOT NULL,
        active INTEGER NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX conversations_active ON conversations (active, id)",
)


class SqliteStoreError(HandoffError):
    """The file cannot be used as a store: not SQLite, another schema version, closed…"""


def _is_active(data: dict[str, Any]) -> int:
    return int(bool(data.get("outbox") or data.get("agent_session") or data.get("timers")))


class SqliteStore:
    """Conversations in the SQLite file at ``path``; see the module docstring.

    Opens on first use (or ``await store.open()``, or ``async with SqliteStore(path) as store``);
    close with :meth:`aclose`. ``path`` may be ``":memory:"`` for a private, non-persistent store.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous: expected one of {', '.join(_SYNCHRONOUS)}")
        self.path = Path(path) if str(path) != ":memory:" else None
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        self.clock = clock
        self._limiter = anyio.CapacityLimiter(1)
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path or ':memory:')!r})"

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> SqliteStore:
        """Open the file now (creating it and its table when new): errors surface here."""
        await self._run(lambda connection: None)
        return self

    async def aclose(self) -> None:
        """Close the connection (idempotent); the store cannot be used afterwards."""
        self._closed = True

        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await anyio.to_thread.run_sync(close, limiter=self._limiter)

    async def __aenter__(self) -> SqliteStore:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the SessionStore port --------------------------------------------------------------------

    async def load(self, conversation_id: str) -> Conversation | None:
        def read(connection: sqlite3.Connection) -> str | None:
            row = connection.execute(
                "SELECT data FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        data = await self._run(read)
        return None if data is None else _decode(conversation_id, data)

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None:
        plain = unstructure_conversation(conversation)
        data = json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
        row = (conversation.step, _is_active(plain), data, self.clock())

        def write(connection: sqlite3.Connection) -> int | None:
            """Apply the step; on a lost race return the stored step (``None``: no record)."""
            if expected_step is None:
                cursor = connection.execute(
                    "INSERT OR IGNORE INTO conversations (id, step, active, data, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (conversation.id, *row),
                )
            else:
                cursor = connection.execute(
                    "UPDATE conversations SET step = ?, active = ?, data = ?, updated_at = ? "
                    "WHERE id = ? AND step = ?",
                    (*row, conversation.id, expected_step),
                )
            if cursor.rowcount == 1:
                return -1
            found = connection.execute(
                "SELECT step FROM conversations WHERE id = ?", (conversation.id,)
            ).fetchone()
            return None if found is None else int(found[0])

        found = await self._run(write)
        if found != -1:
            raise StaleConversation(
                f"conversation {conversation.id!r} is at step {found}, expected {expected_step}"
            )

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        done = set(effect_keys)

        def remove(connection: sqlite3.Connection) -> None:
            # Read and write in one transaction: a save from another connection can't slip in.
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT data FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
                if row is not None:
                    data = _parse(conversation_id, str(row[0]))
                    outbox = data.get("outbox") or []
                    kept = [e for e in outbox if not (isinstance(e, dict) and e.get("key") in done)]
                    if len(kept) != len(outbox):
                        data["outbox"] = kept
                        connection.execute(
                            "UPDATE conversations SET active = ?, data = ?, updated_at = ? "
                            "WHERE id = ?",
                            (
                                _is_active(data),
                                json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                                self.clock(),
                                conversation_id,
                            ),
                        )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        await self._run(remove)

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        def take(connection: sqlite3.Connection) -> str | None:
            # Check and write in one IMMEDIATE transaction: no other writer can slip in between.
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT step, data FROM conversations WHERE id = ?", (conversation_id,)
                ).fetchone()
                claimed: str | None = None
                if row is not None and int(row[0]) == step:
                    data = _parse(conversation_id, str(row[1]))
                    holder, held_until = data.get("lease_owner"), data.get("lease_until")
                    # Someone else's lease holds only while it has a deadline in the future.
                    held = (
                        holder not in (None, owner)
                        and isinstance(held_until, int | float)
                        and held_until > now
                    )
                    if data.get("outbox") and not held:
                        data["lease_owner"], data["lease_until"] = owner, until
                        claimed = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
                        connection.execute(
                            "UPDATE conversations SET data = ?, updated_at = ? WHERE id = ?",
                            (claimed, self.clock(), conversation_id),
                        )
                connection.execute("COMMIT")
                return claimed
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        data = await self._run(take)
        return None if data is None else _decode(conversation_id, data)

    async def active(self) -> AsyncIterator[Conversation]:
        """The active conversations, by id, a page at a time (no transaction is held between
        pages: a conversation saved meanwhile is read as it is then)."""
        after = ""
        while True:

            def page(connection: sqlite3.Connection, after: str = after) -> list[tuple[str, str]]:
                rows = connection.execute(
                    "SELECT id, data FROM conversations WHERE active = 1 AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (after, ACTIVE_PAGE),
                ).fetchall()
                return [(str(i), str(d)) for i, d in rows]

            rows = await self._run(page)
            for conversation_id, data in rows:
                try:
                    conversation = _decode(conversation_id, data)
                except LocalProtocolError as exc:
                    # One unreadable record must not stop every other conversation resuming.
                    log.warning("conversation %r skipped: %s", conversation_id, exc.message)
                    continue
                yield conversation
            if len(rows) < ACTIVE_PAGE:
                return
            after = rows[-1][0]

    # -- introspection ----------------------------------------------------------------------------

    async def count(self) -> int:
        """How many conversations the file holds."""

        def read(connection: sqlite3.Connection) -> int:
            return int(connection.execute("SELECT count(*) FROM conversations").fetchone()[0])

        return await self._run(read)

    # -- the worker thread ------------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._connection is None:
                if self._closed:
                    raise SqliteStoreError(f"{self!r} is closed")
                self._connection = self._connect()
            return work(self._connection)

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        name = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            _create_private(self.path)
        try:
            # isolation_level=None: statements commit on their own unless we BEGIN. The limiter
            # lets one thread at a time use the connection, whichever worker thread it is.
            connection = sqlite3.connect(
                name, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise SqliteStoreError(f"{name}: cannot open the store: {exc}") from None
        try:
            connection.execute("PRAGMA journal_mode = WAL").fetchone()
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            _prepare(connection, name)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise SqliteStoreError(f"{name}: not a usable SQLite store: {exc}") from None
        except BaseException:
            connection.close()
            raise
        return connection


def _create_private(path: Path) -> None:
    """Create the file owner-only (0600) if it does not exist: it will hold secrets."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise SqliteStoreError(f"{path}: cannot create the store: {exc.strerror}") from None
    os.close(descriptor)


def _prepare(connection: sqlite3.Connection, name: str) -> None:
    """Create the tables in a new file; refuse a file of another schema version."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        _check_or_create_schema(connection, name)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _check_or_create_schema(connection: sqlite3.Connection, name: str) -> None:
    tables = {
        str(row[0])
        for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if "handoff_store" in tables:
        row = connection.execute(
            "SELECT value FROM handoff_store WHERE key = 'schema_version'"
        ).fetchone()
        found = None if row is None else str(row[0])
        if found != str(SCHEMA_VERSION):
            raise SqliteStoreError(
                f"{name}: the store has schema version {found}; this version of handoff "
                f"reads version {SCHEMA_VERSION} (use a matching handoff, or a new file)"
            )
        return
    if "conversations" in tables:
        raise SqliteStoreError(
            f"{name}: has a 'conversations' table but no handoff schema version: "
            "not a handoff store"
        )
    for statement in _CREATE:
        connection.execute(statement)
    connection.execute(
        "INSERT INTO handoff_store (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def _parse(conversation_id: str, data: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        # The position only: the text holds secrets.
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r} is not valid JSON (at character {exc.pos})"
            if isinstance(exc, json.JSONDecodeError)
            else f"stored conversation {conversation_id!r} is not valid JSON"
        ) from None
    if not isinstance(parsed, dict):
        raise LocalProtocolError(f"stored conversation {conversation_id!r} is not a JSON object")
    return parsed


def _decode(conversation_id: str, data: str) -> Conversation:
    conversation = structure_conversation(_parse(conversation_id, data))
    if conversation.id != conversation_id:
        raise LocalProtocolError(
            f"stored conversation {conversation_id!r} holds the record of {conversation.id!r}"
        )
    return conversation
