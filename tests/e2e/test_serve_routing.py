"""`handoff serve` with several agent backends at once, over real loopback HTTP: the generic channel
API (SSE) → Einstein simulator bot → its escalation target picks the Live Agent backend, not the
default MIAW one → the Live Agent simulator's agent answers through SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from httpx_sse import aconnect_sse

from handoff_adapters._serve import serve
from handoff_adapters.einstein.simulator import DEFAULT_QUEUE_ID, EinsteinSimulator
from handoff_adapters.liveagent.simulator import Simulator, SimulatorConfig
from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_adapters.service.app import HandoffService
from handoff_adapters.service.config import parse_config

pytestmark = pytest.mark.anyio

TOKEN = "einstein-static-token"


async def texts_until(events: AsyncIterator[Any], wanted: str) -> list[str]:
    seen: list[str] = []
    with anyio.fail_after(10):
        async for sse in events:
            if sse.event == "message":
                seen.append(json.loads(sse.data)["text"])
                if wanted in seen[-1]:
                    return seen
    raise AssertionError(f"stream ended before {wanted!r}: {seen}")


async def test_escalation_target_routes_to_the_second_backend() -> None:
    einstein = EinsteinSimulator(tokens={TOKEN})
    liveagent = Simulator(SimulatorConfig(agent_delay=0.05, client_poll_timeout=5))
    miaw = MiawSimulator(auto_join="Jane Agent")
    async with (
        serve(einstein.app) as einstein_url,
        serve(liveagent.app) as liveagent_url,
        serve(miaw.app) as miaw_url,
    ):
        config = parse_config(
            {
                "bot": {
                    "type": "einstein",
                    "runtime_url": einstein_url,
                    "org_id": einstein.org_id,
                    "bot_id": next(iter(einstein.bots)),
                    "force_endpoint": "https://simulated.my.salesforce.com/",
                    "access_token_env": "EINSTEIN_TOKEN",
                },
                "backends": {
                    "web": {
                        "type": "miaw",
                        "url": miaw_url,
                        "org_id": miaw.org_id,
                        "developer_name": miaw.developer_name,
                    },
                    "legacy": {
                        "type": "liveagent",
                        "endpoint": liveagent_url,
                        "organization_id": "00DSIM0000000001AA",
                        "deployment_id": "572SIM000000001",
                        "button_id": "573SIM000000001",
                    },
                },
                "routing": {
                    "default": "web",
                    "rules": [{"target": f"queue:{DEFAULT_QUEUE_ID}", "backend": "legacy"}],
                },
            }
        )
        service = HandoffService(config, environ={"EINSTEIN_TOKEN": TOKEN})
        async with (
            serve(service.app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            aconnect_sse(client, "GET", "/api/conversations/r-1/events") as source,
        ):
            events = source.aiter_sse()
            await client.post("/api/conversations/r-1/messages", json={"text": "hello"})
            await client.post("/api/conversations/r-1/messages", json={"text": "a transfer please"})
            texts = await texts_until(events, "Hi, I'm Ada")
            assert any("has joined the chat" in text for text in texts)
            assert not miaw.conversations  # the default backend was not used
            state = (await client.get("/api/conversations/r-1")).json()
            assert state["owner"] == "agent"
            assert state["agent_name"] == "Ada"
            await source.response.aclose()
            with pytest.raises((httpx.HTTPError, httpx.StreamError)):
                async for _ in events:
                    pass
