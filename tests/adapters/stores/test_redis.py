"""``RedisStore`` against real ``redis-server`` processes: the store conformance kit (asyncio and
trio), a real restart through the Runtime and the MIAW simulator, unreadable records, expiry of
inactive records, clear connection errors, and a Sentinel failover of the master."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import attrs
import pytest

from handoff_adapters.stores import RedisStore, RedisStoreError
from handoff_adapters.stores.redis import check_server_version
from handoff_adapters.testing import STORE_CASES, check_store, realistic_conversation
from handoff_core.conversation import Conversation
from handoff_core.errors import LocalProtocolError
from handoff_core.ports import StaleConversation
from tests.adapters.stores.redis_servers import (
    SERVICE,
    RedisProcess,
    command,
    free_port,
    redis_process,
    sentinel_group,
    wait_until,
)
from tests.adapters.stores.restart import check_restart_resumes_a_miaw_chat

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with redis_process(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test: tests share the module's server."""
    return f"t-{uuid.uuid4().hex[:8]}:"


async def test_redis_store_passes_the_kit(redis: RedisProcess, prefix: str) -> None:
    async def make() -> RedisStore:
        return await RedisStore(url=redis.url, prefix=prefix).open()

    report = await check_store(make)
    assert [r.name for r in report.results] == list(STORE_CASES)
    assert report.failures == [], "\n".join(f"{r.name}: {r.detail}" for r in report.failures)
    async with RedisStore(url=redis.url, prefix=prefix) as store:
        assert await store.count() >= 5  # the kit's active records are in Redis, under the prefix
    assert command(redis.port, "EXISTS", f"{prefix}active").strip() == "1"


async def test_one_hash_per_conversation_and_an_active_set(
    redis: RedisProcess, prefix: str
) -> None:
    conversation = realistic_conversation("c1")
    async with RedisStore(url=redis.url, prefix=prefix) as store:
        await store.save(conversation, expected_step=None)
        await store.save(Conversation.new("idle"), expected_step=None)
    assert command(redis.port, "TYPE", f"{prefix}conv:c1").strip() == "hash"
    assert command(redis.port, "HGET", f"{prefix}conv:c1", "step").strip() == str(conversation.step)
    assert command(redis.port, "ZRANGE", f"{prefix}active", "0", "-1").split() == ["c1"]


async def test_secrets_stay_out_of_repr(redis: RedisProcess, prefix: str) -> None:
    store = RedisStore(url=redis.url, prefix=prefix, password="hunter2-SECRET")
    assert "SECRET" not in repr(store)
    assert "SECRET" not in store.target
    with pytest.raises(ValueError, match="url: must not hold a password"):
        RedisStore(url=f"redis://:SECRET@127.0.0.1:{redis.port}/0")


async def test_a_refused_connection_names_the_target() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(url=f"redis://127.0.0.1:{port}/0", connect_timeout=2)
    with pytest.raises(RedisStoreError, match=rf"Redis at redis://127\.0\.0\.1:{port}/0: cannot "):
        await store.open()
    await store.aclose()


async def test_a_wrong_password_is_named(tmp_path: Path) -> None:
    with redis_process(tmp_path, "--requirepass", "right-one") as server:
        store = RedisStore(url=server.url, password="wrong-one")
        with pytest.raises(RedisStoreError, match="the password was refused") as caught:
            await store.open()
        assert "wrong-one" not in str(caught.value)
        await store.aclose()
        async with RedisStore(url=server.url, password="right-one") as store:
            await store.save(Conversation.new("c1"), expected_step=None)
            assert await store.load("c1") == Conversation.new("c1")


def test_an_old_server_is_refused_clearly() -> None:
    with pytest.raises(RedisStoreError, match=r"Redis 5\.0\.14 is too old; .* needs Redis 6\.2"):
        check_server_version("5.0.14", "Redis at redis://db:6379/0")
    with pytest.raises(RedisStoreError, match=r"unknown version"):
        check_server_version("", "Redis at redis://db:6379/0")
    with pytest.raises(RedisStoreError, match=r"Redis 6\.0\.9 is too old"):
        check_server_version("6.0.9", "Redis at redis://db:6379/0")
    check_server_version("6.2.0", "x")
    check_server_version("7.2.4", "x")


async def test_an_unopened_or_closed_store_says_so(redis: RedisProcess) -> None:
    store = RedisStore(url=redis.url)
    with pytest.raises(RedisStoreError, match="is not open"):
        await store.load("c1")
    await store.open()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(RedisStoreError, match="is closed"):
        await store.load("c1")


async def test_an_unreadable_record_is_named_and_skipped_by_active(
    redis: RedisProcess, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisStore(url=redis.url, prefix=prefix) as store:
        for cid in ("a", "b", "c", "d"):
            await store.save(realistic_conversation(cid), expected_step=None)
        command(redis.port, "HSET", f"{prefix}conv:b", "body", '{"token": "SEC')
        command(redis.port, "DEL", f"{prefix}conv:d")
        command(redis.port, "SET", f"{prefix}conv:d", "not a hash")
        with caplog.at_level(logging.WARNING, logger="handoff.store.redis"):
            assert [c.id async for c in store.active()] == ["a", "c"]
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert len(skipped) == 2
        assert "'b'" in skipped[0]
        assert "'d'" in skipped[1]
        with pytest.raises(LocalProtocolError, match=r"'b': field 'body' is not valid JSON") as bad:
            await store.load("b")
        assert "SEC" not in str(bad.value)  # the record's text is never quoted
        with pytest.raises(LocalProtocolError, match=r"'d' is not a handoff record"):
            await store.load("d")
        with pytest.raises(LocalProtocolError, match=r"'d' is not a handoff record"):
            await store.mark_done("d", ["x"])
        # The other conversations are unaffected.
        a = await store.load("a")
        assert a is not None
        await store.save(attrs.evolve(a, step=a.step + 1), expected_step=a.step)


async def test_inactive_records_expire_after_idle_ttl(redis: RedisProcess, prefix: str) -> None:
    live = realistic_conversation("live")  # an outbox, an agent session, timers
    async with RedisStore(url=redis.url, prefix=prefix, idle_ttl=600) as store:
        await store.save(live, expected_step=None)
        await store.save(Conversation.new("idle"), expected_step=None)
        assert command(redis.port, "TTL", f"{prefix}conv:live").strip() == "-1"  # never expires
        ttl = int(command(redis.port, "TTL", f"{prefix}conv:idle"))
        assert 590 <= ttl <= 600
        # The chat ends: no session, no timers, and its outbox done → it starts to expire.
        ended = attrs.evolve(live, step=live.step + 1, agent_session=None, timers=())
        await store.save(ended, expected_step=live.step)
        # Its outbox is still to be performed: still active, still kept.
        assert command(redis.port, "TTL", f"{prefix}conv:live").strip() == "-1"
        await store.mark_done("live", [e.key for e in ended.outbox])
        assert 590 <= int(command(redis.port, "TTL", f"{prefix}conv:live")) <= 600
        # Active again → persistent again.
        await store.save(attrs.evolve(live, step=live.step + 2), expected_step=live.step + 1)
        assert command(redis.port, "TTL", f"{prefix}conv:live").strip() == "-1"
    async with RedisStore(url=redis.url, prefix=prefix, idle_ttl=1) as store:
        await store.save(Conversation.new("brief"), expected_step=None)
        assert await store.load("brief") is not None
        with anyio.fail_after(5):
            # Redis expires it within about a second: poll that outside condition.
            while await store.load("brief") is not None:  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_a_restarted_runtime_resumes_the_agent_chat_on_miaw(
    redis: RedisProcess, prefix: str
) -> None:
    await check_restart_resumes_a_miaw_chat(lambda: RedisStore(url=redis.url, prefix=prefix))


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_store_follows_a_sentinel_failover(tmp_path: Path) -> None:
    """Master + replica + sentinel: the master dies, the sentinel promotes the replica, and the
    same store instance goes on (its calls retry until the new master answers), data intact."""
    with sentinel_group(tmp_path) as group:
        old_master = group.master.port
        assert group.master_port() == old_master
        async with RedisStore(
            sentinels=group.sentinels, service_name=SERVICE, retry_for=20
        ) as store:
            first = realistic_conversation("c1")
            await store.save(first, expected_step=None)
            # The replica has the record before the master dies (replication is asynchronous).
            assert command(group.master.port, "WAIT", "1", "5000").strip() == "1"
            group.master.kill()
            started = time.monotonic()
            second = attrs.evolve(first, step=first.step + 1, user_name="after the failover")
            await store.save(second, expected_step=first.step)  # retried until the new master
            took = time.monotonic() - started
            assert group.master_port() == group.replica.port
            assert await store.load("c1") == second
            with pytest.raises(StaleConversation):
                await store.save(second, expected_step=first.step)
            assert [c.id async for c in store.active()] == ["c1"]
        assert took < 15, f"the failover took {took:.1f} s"
        wait_until(
            "the replica to be the master",
            lambda: "role:master" in command(group.replica.port, "INFO", "replication"),
        )
