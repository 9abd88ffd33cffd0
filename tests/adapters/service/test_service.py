"""`handoff serve`'s app over real loopback HTTP: channel API (SSE and webhook), routing between
backends, health, metrics, bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from handoff_adapters._serve import serve
from handoff_adapters.service.app import HandoffService
from handoff_adapters.service.config import parse_config
from handoff_core import AgentMessage, State
from tests.adapters.service.conftest import NamedScriptedAgents

pytestmark = pytest.mark.anyio

CONFIG: dict[str, Any] = {
    "bot": {"type": "echo", "targets": ["queue:billing"]},
    "backends": {"web": {"type": "scripted"}, "legacy": {"type": "scripted"}},
    "routing": {"default": "web", "rules": [{"target": "queue:billing", "backend": "legacy"}]},
}


@asynccontextmanager
async def running(data: dict[str, Any]) -> AsyncIterator[tuple[httpx.AsyncClient, HandoffService]]:
    service = HandoffService(parse_config(data))
    async with serve(service.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client, service


async def finish(response: httpx.Response, events: AsyncIterator[Any]) -> None:
    """Close an SSE response and drain its generator chain (trio reports abandoned ones)."""
    await response.aclose()
    with pytest.raises((httpx.HTTPError, httpx.StreamError)):
        async for _ in events:
            pass


async def state_of(client: httpx.AsyncClient, conversation: str) -> str:
    state: str = (await client.get(f"/api/conversations/{conversation}")).json()["state"]
    return state


async def next_message(events: AsyncIterator[Any], wanted: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        async for sse in events:
            if sse.event == "message":
                item: dict[str, Any] = json.loads(sse.data)
                if wanted in item["text"]:
                    return item
    raise AssertionError("stream ended")


async def test_channel_api_sse_escalation_routed_by_target(
    scripted_backends: dict[str, NamedScriptedAgents],
) -> None:
    async with running(CONFIG) as (client, _):
        assert (await client.get("/readyz")).json()["status"] == "ready"
        async with aconnect_sse(client, "GET", "/api/conversations/c-1/events") as source:
            events = source.aiter_sse()
            answer = await client.post("/api/conversations/c-1/messages", json={"text": "hi"})
            assert answer.status_code == 202
            assert answer.json()["owner"] == "bot"
            assert (await next_message(events, "echo bot"))["sender"] == "bot"

            # The echo bot escalates to queue:billing, which the rules send to "legacy".
            await client.post("/api/conversations/c-1/messages", json={"text": "transfer me"})
            joined = await next_message(events, "has joined")
            assert joined["sender"] == "system"
            assert joined["message_key"] == "agentJoinedMessage"
            assert scripted_backends["legacy"].opened
            assert not scripted_backends["web"].opened

            answer = await client.post(
                "/api/conversations/c-1/messages", json={"text": "where is my parcel?"}
            )
            assert answer.json()["owner"] == "agent"
            assert scripted_backends["legacy"].sent == [("api:c-1#1", "where is my parcel?")]
            scripted_backends["legacy"].push("api:c-1#1", AgentMessage, text="On its way")
            item = await next_message(events, "On its way")
            assert item["sender"] == "agent"
            assert item["agent_name"] == "Ada"
            await finish(source.response, events)

        state = (await client.get("/api/conversations/c-1")).json()
        assert state["state"] == State.AGENT_CONNECTED.value
        metrics = (await client.get("/metrics")).text
        assert 'handoff_conversations{state="agent_connected"} 1.0' in metrics
        assert 'handoff_transfers_total{outcome="Succeeded"} 1.0' in metrics
        assert 'handoff_relay_latency_seconds_count{direction="user_to_agent"} 1.0' in metrics
        assert 'handoff_relay_latency_seconds_count{direction="agent_to_user"} 1.0' in metrics


async def test_default_backend_and_webhook_delivery(
    scripted_backends: dict[str, NamedScriptedAgents],
) -> None:
    received: list[dict[str, Any]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        arrived.set()
        return JSONResponse({})

    sink = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve(sink) as sink_url:
        data = {
            **CONFIG,
            "bot": {"type": "echo"},  # no target: the default backend
            "channels": {"api": {"webhook_url": f"{sink_url}/hook"}},
        }
        async with running(data) as (client, _):
            await client.post("/api/conversations/c-2/messages", json={"text": "agent"})
            assert scripted_backends["web"].opened
            assert not scripted_backends["legacy"].opened
            with anyio.fail_after(5):
                while not any(r["message_key"] == "agentJoinedMessage" for r in received):
                    await arrived.wait()
                    arrived = anyio.Event()
            assert received[0]["conversation"] == "c-2"


async def test_failed_transfer_is_counted(
    scripted_backends: dict[str, NamedScriptedAgents],
) -> None:
    data = {**CONFIG, "backends": {"web": {"type": "scripted", "reject": None, "auto_join": None}}}
    data["routing"] = {}
    async with running(data) as (client, _):
        await client.post("/api/conversations/c-3/messages", json={"text": "transfer me"})
        from handoff_core import RejectReason, TransferRejected

        scripted_backends["web"].push(
            "api:c-3#1", TransferRejected, reason=RejectReason.NO_AGENT_AVAILABLE
        )
        with anyio.fail_after(5):
            while await state_of(client, "c-3") != "transfer_failed":  # noqa: ASYNC110
                await anyio.sleep(0.01)
        metrics = (await client.get("/metrics")).text
        assert 'handoff_transfers_total{outcome="NoAgentAvailable"} 1.0' in metrics


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/conversations/c-4/messages", b"{not json", 400, None),
        ("/api/conversations/c-4/messages", b"[1]", 422, "$"),
        ("/api/conversations/c-4/messages", b'{"text": 5}', 422, "text"),
        ("/api/conversations/c-4/messages", b'{"text": "x", "message_id": 1}', 422, "message_id"),
        ("/api/conversations/c-4/typing", b'{"typing": "yes"}', 422, "typing"),
        ("/api/conversations/bad%20id/messages", b'{"text": "x"}', 422, "conversation"),
        (
            "/api/conversations/c-4/messages",
            b'{"text": "' + b"x" * (1024 * 1024) + b'"}',
            413,
            None,
        ),
    ],
)
async def test_bad_requests_are_problems(
    scripted_backends: dict[str, NamedScriptedAgents],
    path: str,
    body: bytes,
    status: int,
    field: str | None,
) -> None:
    async with running(CONFIG) as (client, service):
        answer = await client.post(path, content=body)
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json().get("field") == field
        assert await service.runtime.get("api:c-4") is None  # nothing applied


async def test_health_before_and_after_start(
    scripted_backends: dict[str, NamedScriptedAgents],
) -> None:
    service = HandoffService(parse_config(CONFIG))
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        answer = await client.post("/api/conversations/c-5/messages", json={"text": "hi"})
        assert answer.status_code == 503
