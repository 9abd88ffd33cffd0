"""The simulator speaks the documented protocol and refuses what Salesforce refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.liveagent.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio

V = {"X-LIVEAGENT-API-VERSION": "47"}


class Visitor:
    """A hand-rolled visitor: just enough protocol to poke the simulator."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}
        self.sequence = 0
        self.id = ""

    async def start(self, **init: Any) -> None:
        response = await self.client.get(
            "/chat/rest/System/SessionId", headers={**V, "X-LIVEAGENT-AFFINITY": "null"}
        )
        body = response.json()
        self.id = body["id"]
        self.headers = {
            **V,
            "X-LIVEAGENT-AFFINITY": body["affinityToken"],
            "X-LIVEAGENT-SESSION-KEY": body["key"],
        }
        payload = {
            "organizationId": "00D",
            "deploymentId": "572",
            "buttonId": "573",
            "sessionId": self.id,
            "userAgent": "t",
            "language": "en",
            "screenResolution": "n/a",
            "visitorName": "V",
            "prechatDetails": [],
            "prechatEntities": [],
            "receiveQueueUpdates": True,
            "isPost": True,
            **init,
        }
        assert (await self.post("ChasitorInit", payload)).status_code == 200

    async def post(self, noun: str, body: Any, sequence: int | None = None) -> httpx.Response:
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        headers = {**self.headers, "X-LIVEAGENT-SEQUENCE": str(sequence)}
        return await self.client.post(f"/chat/rest/Chasitor/{noun}", json=body, headers=headers)

    async def poll(self, ack: int) -> httpx.Response:
        return await self.client.get(
            "/chat/rest/System/Messages", params={"ack": ack}, headers=self.headers
        )


@pytest.fixture
async def world() -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    simulator = Simulator(SimulatorConfig(agent_delay=None, greeting=None, hold_seconds=0.3))
    async with serve(simulator.app) as url, httpx.AsyncClient(base_url=url) as client:
        yield simulator, client


async def test_ack_semantics_204_and_redelivery(world: tuple[Simulator, httpx.AsyncClient]) -> None:
    _simulator, client = world
    visitor = Visitor(client)
    await visitor.start()
    first = await visitor.poll(-1)
    assert first.status_code == 200
    assert first.json()["messages"][0]["type"] == "ChatRequestSuccess"
    sequence, offset = first.json()["sequence"], first.json()["offset"]
    again = await visitor.poll(-1)  # ack not advanced: the same batch again
    assert (again.json()["sequence"], again.json()["offset"]) == (sequence, offset)
    assert (await visitor.poll(sequence)).status_code == 204  # held, then nothing new


async def test_a_second_concurrent_poll_terminates_the_chat(
    world: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, client = world
    simulator.config.hold_seconds = 3
    visitor = Visitor(client)
    await visitor.start()
    ack = (await visitor.poll(-1)).json()["sequence"]
    statuses: list[int] = []

    async def poll() -> None:
        statuses.append((await visitor.poll(ack)).status_code)

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await anyio.sleep(0.1)
        group.start_soon(poll)
    assert 409 in statuses
    assert simulator.session(visitor.id).state == "ended"


async def test_requests_are_validated(world: tuple[Simulator, httpx.AsyncClient]) -> None:
    simulator, client = world
    rest = "/chat/rest"
    assert (await client.get(f"{rest}/System/SessionId")).status_code == 400  # no version
    wrong = {**V, "X-LIVEAGENT-AFFINITY": "abc"}
    assert (await client.get(f"{rest}/System/SessionId", headers=wrong)).status_code == 400
    unknown = {**V, "X-LIVEAGENT-AFFINITY": "a", "X-LIVEAGENT-SESSION-KEY": "nope"}
    assert (await client.get(f"{rest}/System/Messages?ack=-1", headers=unknown)).status_code == 403
    visitor = Visitor(client)
    await visitor.start()
    session = simulator.session(visitor.id)
    # Before ChatEstablished a ChatMessage is a NullPointerException (documented 500).
    assert (await visitor.post("ChatMessage", {"text": "too early"})).status_code == 500
    assert session.violations == ["Chasitor/ChatMessage before ChatEstablished"]
    simulator.join(session, "Ada")
    no_sequence = await client.post(
        f"{rest}/Chasitor/ChatMessage", json={"text": "x"}, headers=visitor.headers
    )
    assert no_sequence.status_code == 400
    assert (await visitor.post("ChatMessage", {"text": "one"}, sequence=2)).status_code == 200
    assert (await visitor.post("ChatMessage", {"text": "one"}, sequence=2)).status_code == 200
    assert session.texts == ["one"]
    assert session.duplicates_ignored == 1
    gap = await visitor.post("ChatMessage", {"text": "three"}, sequence=4)
    assert gap.status_code == 409
    assert "Expected 3. Actual 4" in gap.text
    assert (await visitor.post("ChatEnd", {}, sequence=3)).status_code == 400  # reason required
    reconnect = await client.get(
        f"{rest}/System/ReconnectSession",
        params={"ReconnectSession.offset": "1"},
        headers=visitor.headers,
    )
    assert reconnect.status_code == 405  # no 503 came first
    end = await visitor.post("ChatEnd", {"reason": "client"}, sequence=3)
    assert end.status_code == 200
    assert session.end_reason == "client"


async def test_unavailable_button_fails_the_request(
    world: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, client = world
    simulator.set_available(False, button="573")
    visitor = Visitor(client)
    await visitor.start()
    message = (await visitor.poll(-1)).json()["messages"][0]
    assert message == {
        "type": "ChatRequestFail",
        "message": {"reason": "Unavailable", "postChatUrl": ""},
    }
    availability = await client.get(
        "/chat/rest/Visitor/Availability",
        headers=V,
        params={"org_id": "00D", "deployment_id": "572", "Availability.ids": "[573,574]"},
    )
    results = availability.json()["messages"][0]["message"]["results"]
    assert results == [{"id": "573"}, {"id": "574", "isAvailable": True}]


async def test_control_api_drives_the_agent(world: tuple[Simulator, httpx.AsyncClient]) -> None:
    _simulator, client = world
    visitor = Visitor(client)
    await visitor.start()
    ack = (await visitor.poll(-1)).json()["sequence"]
    assert (
        await client.post("/_control/sessions/latest/join", json={"name": "Bo"})
    ).status_code == 200
    assert (
        await client.post("/_control/sessions/latest/say", json={"text": "hi"})
    ).status_code == 200
    batch = (await visitor.poll(ack)).json()
    assert [m["type"] for m in batch["messages"]] == ["ChatEstablished", "ChatMessage"]
    assert batch["messages"][1]["message"] == {"name": "Bo", "text": "hi"}
    fault = await client.post("/_control/sessions/latest/fault", json={"kind": "reconnect"})
    assert fault.status_code == 200
    assert (await visitor.poll(batch["sequence"])).status_code == 503
    bad = await client.post("/_control/sessions/latest/fault", json={"kind": "meteor"})
    assert bad.status_code == 400
    assert "expected one of" in bad.text
    listed = (await client.get("/_control/sessions")).json()
    assert listed[0]["agent"] == "Bo"
    assert listed[0]["state"] == "chatting"
    assert "key" not in listed[0]  # the session key is a secret, even here
