"""``SqliteStore``: the store conformance kit on a real file (asyncio and trio), its file and schema
checks, and a real restart: a runtime on the MIAW simulator stops mid-chat, a new one resumes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from handoff_adapters.stores import SqliteStore, SqliteStoreError
from handoff_adapters.testing import STORE_CASES, check_store, realistic_conversation
from handoff_core.errors import LocalProtocolError
from tests.adapters.stores.restart import check_restart_resumes_a_miaw_chat

pytestmark = pytest.mark.anyio


async def test_sqlite_store_passes_the_kit(tmp_path: Path) -> None:
    path = tmp_path / "kit.sqlite3"
    report = await check_store(lambda: SqliteStore(path))
    assert [r.name for r in report.results] == list(STORE_CASES)
    assert report.failures == [], "\n".join(f"{r.name}: {r.detail}" for r in report.failures)
    async with SqliteStore(path) as store:
        assert await store.count() >= 10  # the kit's records are in the file


async def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "private.sqlite3"
    async with SqliteStore(path) as store:
        await store.save(realistic_conversation("c1"), expected_step=None)
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        plan = " ".join(
            str(row[-1])
            for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT id, data FROM conversations "
                "WHERE active = 1 AND id > '' ORDER BY id LIMIT 10"
            )
        )
        assert "conversations_active" in plan  # active() reads the index, not the whole table
    connection.close()


async def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    conversation = realistic_conversation("c1")
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        await store.save(conversation, expected_step=None)
        assert "SECRET" not in repr(store)
        assert "SECRET" not in repr(await store.load("c1"))


async def test_another_schema_version_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE handoff_store SET value = '99' WHERE key = 'schema_version'")
    connection.close()
    store = SqliteStore(path)
    with pytest.raises(SqliteStoreError, match=r"schema version 99; .* reads version 1"):
        await store.open()
    await store.aclose()


async def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the conversations you are looking for\n" * 20)
    store = SqliteStore(path)
    with pytest.raises(SqliteStoreError, match=r"notes\.txt: not a usable SQLite store"):
        await store.load("c1")
    await store.aclose()


async def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nowhere" / "s.sqlite3")
    with pytest.raises(SqliteStoreError, match=r"nowhere/s\.sqlite3: cannot create the store"):
        await store.open()
    await store.aclose()


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = await SqliteStore(tmp_path / "s.sqlite3").open()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(SqliteStoreError, match="is closed"):
        await store.load("c1")


async def test_an_unreadable_record_is_skipped_by_active_and_named_by_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with SqliteStore(path) as store:
        for cid in ("a", "b", "c"):
            await store.save(realistic_conversation(cid), expected_step=None)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE conversations SET data = '{\"token\": \"SEC' WHERE id = 'b'")
    connection.close()
    async with SqliteStore(path) as store:
        assert [c.id async for c in store.active()] == ["a", "c"]
        with pytest.raises(LocalProtocolError, match=r"'b' is not valid JSON") as caught:
            await store.load("b")
        assert "SEC" not in str(caught.value)  # the record's text is never quoted


async def test_active_pages_through_many_conversations(tmp_path: Path) -> None:
    conversation = realistic_conversation("template")
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        for n in range(450):  # more than two pages
            await store.save(
                conversation.__class__(id=f"c{n:04d}", agent_session=f"c{n:04d}#1"),
                expected_step=None,
            )
        await store.save(conversation.__class__(id="idle"), expected_step=None)
        ids = [c.id async for c in store.active()]
    assert ids == [f"c{n:04d}" for n in range(450)]


async def test_a_restarted_runtime_resumes_the_agent_chat_on_miaw(tmp_path: Path) -> None:
    path = tmp_path / "handoff.sqlite3"
    await check_restart_resumes_a_miaw_chat(lambda: SqliteStore(path))
