"""SqliteStore against MemoryStore(serialize=True), both measured in the same run.

For 10,000 realistic conversations (an agent chat with cursors, transcript, audit, a pending
outbox: :func:`handoff_adapters.testing.realistic_conversation`): inserts, conditional updates
(the runtime's ``save(expected_step=…)``), loads and ``mark_done`` per second, one at a time as the
runtime does them, plus loads from 50 concurrent tasks; and bytes per conversation (SQLite: the
file after a checkpoint; memory: what ``tracemalloc`` sees the stored plain data take). Each line
prints the ratio SQLite / memory.

Run: ``python benchmarks/store_sqlite.py [--conversations N] [--backend asyncio|trio]``.
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import attrs

from handoff_adapters.stores import SqliteStore
from handoff_adapters.testing import realistic_conversation
from handoff_core.conversation import Conversation
from handoff_core.ports import SessionStore
from handoff_core.runtime import MemoryStore


async def _timed(count: int, work: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second of ``work(0..count-1)``, one after the other."""
    started = time.perf_counter()
    for n in range(count):
        await work(n)
    return count / (time.perf_counter() - started)


async def _timed_concurrently(
    count: int, tasks: int, work: Callable[[int], Awaitable[object]]
) -> float:
    async def worker(first: int) -> None:
        for n in range(first, count, tasks):
            await work(n)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for first in range(tasks):
            group.start_soon(worker, first)
    return count / (time.perf_counter() - started)


async def measure(store: SessionStore, records: list[Conversation]) -> dict[str, float]:
    count = len(records)
    results: dict[str, float] = {}

    async def insert(n: int) -> None:
        await store.save(records[n], expected_step=None)

    async def update(n: int) -> None:
        record = records[n]
        await store.save(attrs.evolve(record, step=record.step + 1), expected_step=record.step)

    async def load(n: int) -> None:
        await store.load(records[n].id)

    async def mark_done(n: int) -> None:
        await store.mark_done(records[n].id, [records[n].outbox[0].key])

    results["insert/s"] = await _timed(count, insert)
    results["conditional save/s"] = await _timed(count, update)
    results["load/s"] = await _timed(count, load)
    results["load/s, 50 tasks"] = await _timed_concurrently(count, 50, load)
    results["mark_done/s"] = await _timed(count, mark_done)
    return results


def _checkpointed_size(path: Path) -> int:
    """The file's size once the WAL is folded into it (the store is closed)."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


async def main(conversations: int) -> None:
    template = realistic_conversation("template")
    records = [attrs.evolve(template, id=f"conversation-{n:06d}") for n in range(conversations)]

    memory_results = await measure(MemoryStore(serialize=True), records)
    # Memory apart: tracemalloc slows every allocation down, so it stays off while timing.
    gc.collect()
    tracemalloc.start()
    memory = MemoryStore(serialize=True)
    before = tracemalloc.get_traced_memory()[0]
    for record in records:
        await memory.save(record, expected_step=None)
    gc.collect()
    memory_results["bytes/conversation"] = (tracemalloc.get_traced_memory()[0] - before) / len(
        memory
    )
    tracemalloc.stop()
    del memory

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.sqlite3"
        async with SqliteStore(path) as store:
            sqlite_results = await measure(store, records)
        sqlite_results["bytes/conversation"] = _checkpointed_size(path) / conversations

    print(f"{conversations} conversations, SQLite {sqlite3.sqlite_version}")
    print(f"{'':24} {'SqliteStore':>14} {'MemoryStore':>14} {'ratio':>8}")
    for name, value in sqlite_results.items():
        baseline = memory_results[name]
        print(f"{name:24} {value:14,.0f} {baseline:14,.0f} {value / baseline:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    options = parser.parse_args()
    anyio.run(main, options.conversations, backend=options.backend)
