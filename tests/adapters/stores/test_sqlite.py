"""``SqliteStore``: the store conformance kit on a real file (asyncio and trio), its file and schema
checks, and a real restart: a runtime on the MIAW simulator stops mid-chat, a new one resumes."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import anyio
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_adapters.stores import SqliteStore, SqliteStoreError
from handoff_adapters.testing import STORE_CASES, check_store, realistic_conversation
from handoff_core import State
from handoff_core.errors import LocalProtocolError
from handoff_core.runtime import Runtime
from tests.adapters.miaw.helpers import FAST
from tests.fakes import RecordingChannel, RuleBot

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
    """Runtime + store stop mid-chat; a NEW runtime + NEW store on the same file go on: the agent
    message sent while down, and every message after, arrive exactly once each way."""
    path = tmp_path / "handoff.sqlite3"
    sim = MiawSimulator(auto_join="Jane Agent")
    async with serve(sim.app) as url:

        def backend() -> MiawBackend:
            return MiawBackend(url, sim.org_id, sim.developer_name, **FAST)

        first_channel = RecordingChannel()
        async with SqliteStore(path) as store, backend() as miaw:
            runtime = Runtime(
                bot=RuleBot(),
                agents=miaw,
                channel=first_channel,
                store=store,
                instance_id="replica-1",
            )
            async with runtime.running():
                await runtime.user_said("c1", "agent")
                await first_channel.wait_for("c1", lambda texts, _: any("Jane" in t for t in texts))
                stored = await store.load("c1")
                assert stored is not None
                assert stored.agent_cursor is not None
                miaw_id = str(stored.agent_cursor["conversation_id"])
                sim.say(miaw_id, "before the restart")
                await first_channel.wait_for("c1", lambda texts, _: "before the restart" in texts)
                await runtime.user_said("c1", "first question")
                with anyio.fail_after(5):
                    await sim.wait_for(
                        lambda s: s.conversation(miaw_id).user_messages == ["first question"]
                    )
        # Down: nothing runs, the agent goes on talking.
        sim.say(miaw_id, "while you were away")

        second_channel = RecordingChannel()
        async with SqliteStore(path) as store, backend() as miaw:
            resumed = await store.load("c1")
            assert resumed is not None
            assert resumed.state is State.AGENT_CONNECTED
            runtime = Runtime(
                bot=RuleBot(),
                agents=miaw,
                channel=second_channel,
                store=store,
                instance_id="replica-1",
            )
            async with runtime.running():
                await second_channel.wait_for("c1", lambda texts, _: "while you were away" in texts)
                sim.say(miaw_id, "after the restart")
                await second_channel.wait_for("c1", lambda texts, _: "after the restart" in texts)
                await runtime.user_said("c1", "second question")
                with anyio.fail_after(5):
                    await sim.wait_for(lambda s: len(s.conversation(miaw_id).user_messages) >= 2)
                await anyio.sleep(0.2)  # let a duplicate, if any, surface
                assert runtime.open_sessions == 1
    agent_before = [t for t in first_channel.texts("c1") if "restart" in t or "away" in t]
    assert agent_before == ["before the restart"]
    assert second_channel.texts("c1") == ["while you were away", "after the restart"]
    assert sim.conversation(miaw_id).user_messages == ["first question", "second question"]
