"""`handoff serve`'s ``[store]`` table and ``server.instance_id``: errors name the key, a SQLite
store builds, and a restarted service keeps its conversations (over the channel API)."""

from __future__ import annotations

import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from handoff_adapters._http import HttpClients
from handoff_adapters._serve import serve
from handoff_adapters.service.app import HandoffService
from handoff_adapters.service.config import ConfigError, load_config, parse_config
from handoff_adapters.service.registry import BuildContext, build_store
from handoff_adapters.stores import RedisStore, SqliteStore, SqliteStoreError
from handoff_core import AgentMessage, State
from handoff_core.conversation import Conversation
from handoff_core.runtime import MemoryStore
from tests.adapters.service.conftest import NamedScriptedAgents
from tests.adapters.service.test_service import finish, next_message
from tests.adapters.stores.redis_servers import redis_process

pytestmark = pytest.mark.anyio

BASE: dict[str, Any] = {
    "bot": {"type": "echo"},
    "backends": {"web": {"type": "scripted"}},
}


def with_store(store: dict[str, Any], **tables: Any) -> dict[str, Any]:
    return {**BASE, "store": store, **tables}


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"type": "mongo"}, "store.type: unknown store type 'mongo'; known: memory, redis, sqlite"),
        ({"type": 3}, 'store.type: expected a string ("memory", "sqlite" or "redis")'),
        ({"type": "redis"}, "store: give either url or sentinels"),
        ({"type": "redis", "url": "http://x"}, "store.url: expected redis://"),
        ({"type": "redis", "url": "redis://:pw@db:6379/0"}, "store.url: must not hold a password"),
        ({"type": "redis", "url": "redis://db", "sentinels": [["s", 1]]}, "store: give either"),
        ({"type": "redis", "sentinels": [["s", 26379]]}, "store.service_name: required"),
        ({"type": "redis", "sentinels": []}, "store.sentinels: expected at least one"),
        ({"type": "redis", "sentinels": [["s", "x"]], "service_name": "m"}, "store.sentinels"),
        ({"type": "redis", "url": "redis://db", "idle_ttl": 0}, "store.idle_ttl: expected a"),
        ({"type": "redis", "url": "redis://db", "password_env": "NOPE"}, "store.password_env: "),
        ({"type": "redis", "url": "redis://db", "prefx": "x"}, "store: unknown key(s) (prefx)"),
        ({"type": "sqlite"}, "store.path: required field missing"),
        ({"type": "sqlite", "path": 7}, "store.path: expected str"),
        ({"type": "sqlite", "path": " "}, "store.path: expected a file path"),
        ({"type": "sqlite", "path": "x.db", "pth": 1}, "store: unknown key(s) (pth)"),
        ({"type": "sqlite", "path": "x.db", "synchronous": "sometimes"}, "store.synchronous:"),
        ({"type": "sqlite", "path": "x.db", "busy_timeout": 0}, "store.busy_timeout: expected"),
        ({"path": "x.db"}, 'store.path: not an option of type = "memory"'),
    ],
)
async def test_store_errors_name_the_key(store: dict[str, Any], message: str) -> None:
    async with HttpClients() as http:
        context = BuildContext(environ={}, http=http)
        with pytest.raises(ConfigError) as caught:
            build_store(parse_config(with_store(store)).store, context)
    assert message in str(caught.value)


async def test_a_redis_store_builds_from_config_and_opens(tmp_path: Path) -> None:
    with redis_process(tmp_path, "--requirepass", "s3cret-pw") as server:
        table = {
            "type": "redis",
            "url": server.url,
            "password_env": "HANDOFF_REDIS_PASSWORD",
            "prefix": "svc:",
            "idle_ttl": 3600,
        }
        async with HttpClients() as http:
            context = BuildContext(environ={"HANDOFF_REDIS_PASSWORD": "s3cret-pw"}, http=http)
            store = build_store(parse_config(with_store(table)).store, context)
        assert isinstance(store, RedisStore)
        assert (store.prefix, store.idle_ttl) == ("svc:", 3600)
        assert "s3cret-pw" not in repr(store)
        async with store:
            await store.save(Conversation.new("c1"), expected_step=None)
            assert await store.load("c1") == Conversation.new("c1")
        sentinel_table = {"type": "redis", "sentinels": [["127.0.0.1", 26379]], "service_name": "m"}
        async with HttpClients() as http:
            context = BuildContext(environ={}, http=http)
            built = build_store(parse_config(with_store(sentinel_table)).store, context)
        assert isinstance(built, RedisStore)
        assert built.target == "Redis master 'm' via sentinels 127.0.0.1:26379"


def test_instance_id_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.instance_id: expected a non-empty string"):
        parse_config({**BASE, "server": {"instance_id": " "}})
    with pytest.raises(ConfigError, match=r"server\.instance_id: expected str"):
        parse_config({**BASE, "server": {"instance_id": 5}})


async def test_defaults_memory_store_and_host_name(
    scripted_backends: dict[str, NamedScriptedAgents],
) -> None:
    service = HandoffService(parse_config(BASE))
    async with service.http:
        assert isinstance(service.store, MemoryStore)
        assert service.runtime.instance_id == socket.gethostname()


async def test_a_sqlite_config_file_builds(
    tmp_path: Path, scripted_backends: dict[str, NamedScriptedAgents]
) -> None:
    path = tmp_path / "conversations.sqlite3"
    config_file = tmp_path / "handoff.toml"
    config_file.write_text(
        '[server]\ninstance_id = "replica-a"\n\n'
        '[bot]\ntype = "echo"\n\n'
        '[backends.web]\ntype = "scripted"\n\n'
        f'[store]\ntype = "sqlite"\npath = "{path}"\nsynchronous = "full"\n'
    )
    service = HandoffService(load_config(config_file))
    assert isinstance(service.store, SqliteStore)
    assert service.store.path == path
    assert service.store.synchronous == "FULL"
    assert service.runtime.instance_id == "replica-a"
    assert not path.exists()  # building opens nothing; the lifespan does
    async with service.lifespan():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(SqliteStoreError, match="is closed"):
        await service.store.load("x")  # the service closed the store it built


async def test_a_bad_store_file_fails_the_start_clearly(
    tmp_path: Path, scripted_backends: dict[str, NamedScriptedAgents]
) -> None:
    path = tmp_path / "not-a-database"
    path.write_bytes(b"\x00garbage" * 200)
    service = HandoffService(parse_config(with_store({"type": "sqlite", "path": str(path)})))
    with pytest.raises(SqliteStoreError, match="not a usable SQLite store"):
        async with service.lifespan():
            pass


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    service = HandoffService(parse_config(config))
    async with serve(service.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def joined(client: httpx.AsyncClient, conversation: str) -> None:
    """Wait for the agent to join (the scripted backend's events arrive through its stream)."""
    with anyio.fail_after(5):
        # No change notification over this API: poll.
        while (await client.get(f"/api/conversations/{conversation}")).json()["owner"] != "agent":  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_a_restarted_service_keeps_its_conversations(
    tmp_path: Path, scripted_backends: dict[str, NamedScriptedAgents]
) -> None:
    config = with_store(
        {"type": "sqlite", "path": str(tmp_path / "handoff.sqlite3")},
        server={"instance_id": "replica-a"},
    )
    async with running(config) as client:
        answer = await client.post("/api/conversations/with-bot/messages", json={"text": "hi"})
        assert answer.json()["owner"] == "bot"
        await client.post("/api/conversations/with-agent/messages", json={"text": "transfer me"})
        await joined(client, "with-agent")
        await client.post("/api/conversations/with-agent/messages", json={"text": "first"})
        first = scripted_backends["web"]
        assert first.sent == [("api:with-agent#1", "first")]
    first.close_all()

    async with running(config) as client:
        second = scripted_backends["web"]
        assert second is not first
        state = (await client.get("/api/conversations/with-agent")).json()
        assert state["state"] == State.AGENT_CONNECTED.value
        assert state["agent_name"] == "Ada"
        state = (await client.get("/api/conversations/with-bot")).json()
        assert state["state"] == State.BOT.value
        assert (await client.get("/api/conversations/never")).status_code == 404

        # The chat goes on through the new backend instance, both ways.
        answer = await client.post(
            "/api/conversations/with-agent/messages", json={"text": "second"}
        )
        assert answer.json()["owner"] == "agent"
        assert second.sent == [("api:with-agent#1", "second")]
        async with aconnect_sse(client, "GET", "/api/conversations/with-agent/events") as source:
            events = source.aiter_sse()
            # A fresh fake numbers its events from 1 again: give this one an id of its own.
            second.push("api:with-agent#1", AgentMessage, text="still here", peer_id="m-9")
            item = await next_message(events, "still here")
            assert item["sender"] == "agent"
            await finish(source.response, events)
        assert second.opened == []  # resumed, not opened again


def test_the_example_documents_a_working_sqlite_store(tmp_path: Path) -> None:
    example = (Path(__file__).parents[3] / "examples" / "handoff.toml").read_text()
    assert '[store]\ntype = "memory"\n# type = "sqlite"\n' in example
    path = tmp_path / "conversations.sqlite3"
    enabled = example.replace(
        '[store]\ntype = "memory"\n# type = "sqlite"\n', '[store]\ntype = "sqlite"\n'
    )
    for option in ("path", "synchronous", "busy_timeout"):
        enabled = enabled.replace(f"# {option} =", f"{option} =")
    enabled = enabled.replace('"/var/lib/handoff/conversations.sqlite3"', f'"{path}"')
    config_file = tmp_path / "handoff.toml"
    config_file.write_text(enabled)
    config = load_config(config_file)
    assert config.store == {
        "type": "sqlite",
        "path": str(path),
        "synchronous": "NORMAL",
        "busy_timeout": 30,
    }
    service = HandoffService(config, environ={"KORE_CLIENT_SECRET": "s" * 64})
    assert isinstance(service.store, SqliteStore)
    assert service.store.path == path
    anyio.run(service.http.aclose)
