"""The simulator refuses what the spec refuses, with the spec's Error body (validated too)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from handoff_adapters.einstein.simulator import BILLING_BOT_ID, DEFAULT_ORG_ID, MAIN_BOT_ID
from tests.adapters.einstein.conftest import TOKEN, Env
from tests.adapters.einstein.openapi import Exchange, SpecValidator

pytestmark = pytest.mark.anyio


def headers(**extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {TOKEN}",
        "X-Org-Id": DEFAULT_ORG_ID,
        "X-Request-ID": str(uuid.uuid4()),
        **extra,
    }


INIT = {"externalSessionKey": "k-1", "forceConfig": {"endpoint": "https://x.my.salesforce.com/"}}


async def start(einstein: Env, body: dict[str, Any] | None = None, **extra: str) -> httpx.Response:
    return await einstein.http.short.post(
        f"{einstein.base_url}/v5.3.0/bots/{MAIN_BOT_ID}/sessions",
        json=body or INIT,
        headers=headers(**extra),
    )


async def refused(
    einstein: Env, method: str, path: str, status: int, match: str, **kwargs: Any
) -> None:
    einstein.transport.invalid_requests = True  # on purpose: only the answer is checked
    try:
        response = await einstein.http.short.request(method, einstein.base_url + path, **kwargs)
    finally:
        einstein.transport.invalid_requests = False
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "path", "requestId", "error", "message", "timestamp"}
    assert match in body["message"]


async def test_status_and_versions(einstein: Env) -> None:
    status = await einstein.http.short.get(einstein.base_url + "/status")
    versions = await einstein.http.short.get(einstein.base_url + "/versions")
    assert status.json() == {"status": "UP"}
    assert {"versionNumber": "5.3.0", "status": "ACTIVE"} in versions.json()["versions"]


async def test_bad_requests_are_refused_naming_the_problem(einstein: Env) -> None:
    path = f"/v5.3.0/bots/{MAIN_BOT_ID}/sessions"
    await refused(
        einstein,
        "POST",
        path,
        401,
        "bearer token",
        json=INIT,
        headers={**headers(), "Authorization": "Bearer wrong"},
    )
    await refused(
        einstein,
        "POST",
        path,
        400,
        "X-Org-Id",
        json=INIT,
        headers={k: v for k, v in headers().items() if k != "X-Org-Id"},
    )
    await refused(
        einstein,
        "POST",
        path,
        403,
        "X-Org-Id",
        json=INIT,
        headers=headers(**{"X-Org-Id": "00DOTHER000000000A"}),
    )
    await refused(
        einstein,
        "POST",
        path,
        400,
        "unexpected field(s) ['type'] @ $.message",
        json={**INIT, "message": {"type": "text", "text": "hi"}},
        headers=headers(),
    )
    await refused(
        einstein,
        "POST",
        path,
        400,
        "required field missing @ $.forceConfig",
        json={"externalSessionKey": "k"},
        headers=headers(),
    )
    await refused(
        einstein,
        "POST",
        path,
        400,
        "not valid JSON",
        content=b"{nope",
        headers={**headers(), "Content-Type": "application/json"},
    )
    await refused(
        einstein,
        "POST",
        "/v5.3.0/bots/0XxNOPE/sessions",
        404,
        "not found",
        json=INIT,
        headers=headers(),
    )
    assert einstein.simulator.sessions == {}


async def test_session_rules(einstein: Env) -> None:
    response = await start(einstein)
    session = response.json()["sessionId"]
    crc = response.headers["x-runtime-crc"]
    messages = f"/v5.3.0/sessions/{session}/messages"
    text = {"message": {"type": "text", "sequenceId": 5, "text": "hi"}}
    ok = await einstein.http.short.post(
        einstein.base_url + messages, json=text, headers=headers(**{"X-Runtime-CRC": crc})
    )
    assert ok.status_code == 200
    again = await einstein.http.short.post(
        einstein.base_url + messages, json=text, headers=headers()
    )
    assert again.json() == ok.json()  # a retried sequenceId gets the same answer
    await refused(
        einstein,
        "POST",
        messages,
        400,
        "sequenceId: 4 is not greater than 5",
        json={"message": {"type": "text", "sequenceId": 4, "text": "x"}},
        headers=headers(),
    )
    await refused(
        einstein,
        "POST",
        messages,
        400,
        "X-Runtime-CRC",
        json={"message": {"type": "text", "sequenceId": 6, "text": "x"}},
        headers=headers(**{"X-Runtime-CRC": "0"}),
    )
    await refused(
        einstein,
        "POST",
        messages,
        400,
        "expected an integer",
        json={"message": {"type": "text", "sequenceId": "6", "text": "x"}},
        headers=headers(),
    )
    await refused(
        einstein,
        "POST",
        messages,
        400,
        "no escalation is pending",
        json={"message": {"type": "transferSucceeded", "sequenceId": 6}},
        headers=headers(),
    )
    await refused(
        einstein,
        "DELETE",
        f"/v5.3.0/sessions/{session}",
        400,
        "X-Session-End-Reason",
        headers=headers(**{"X-Session-End-Reason": "Bored"}),
    )
    end = await einstein.http.short.delete(
        f"{einstein.base_url}/v5.3.0/sessions/{session}",
        headers=headers(**{"X-Session-End-Reason": "UserRequest"}),
    )
    assert end.json()["messages"][0]["type"] == "sessionEnded"
    await refused(
        einstein,
        "POST",
        messages,
        404,
        "session not found",
        json={"message": {"type": "text", "sequenceId": 7, "text": "x"}},
        headers=headers(),
    )


async def test_control_api_injects_faults_and_replaces_dialogs(einstein: Env) -> None:
    base = einstein.base_url
    client = einstein.http.short
    assert (
        await client.post(
            f"{base}/_sim/faults", json={"status": 429, "retryAfter": 2, "operation": "start"}
        )
    ).status_code == 200
    assert (await client.post(f"{base}/_sim/faults", json={"count": 1})).status_code == 400
    busy = await start(einstein)
    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "2"
    assert busy.json()["error"] == "TooManyRequestsError"
    dialog = {"name": "Echo", "greeting": ["Echo bot, {BotName}."], "menu_prompt": None}
    assert (await client.put(f"{base}/_sim/bots/{BILLING_BOT_ID}", json=dialog)).status_code == 200
    assert (await client.put(f"{base}/_sim/bots/x", json={"nope": 1})).status_code == 400
    response = await einstein.http.short.post(
        f"{base}/v5.3.0/bots/{BILLING_BOT_ID}/sessions", json=INIT, headers=headers()
    )
    assert [m["text"] for m in response.json()["messages"]] == ["Echo bot, Echo."]
    state = (await client.get(f"{base}/_sim/state")).json()
    assert [s["botId"] for s in state["sessions"]] == [BILLING_BOT_ID]
    assert (await client.post(f"{base}/_sim/reset")).json() == {"reset": True}
    assert einstein.simulator.sessions == {}


def test_the_validator_catches_what_breaks_the_spec() -> None:
    """The OpenAPI check is not vacuous: a request or response off the spec fails it."""
    base = "http://127.0.0.1:1"

    def exchange(body: dict[str, Any], response: dict[str, Any], status: int = 200) -> Exchange:
        request = httpx.Request(
            "POST", f"{base}/v5.3.0/bots/b/sessions", json=body, headers=headers()
        )
        return Exchange(
            request,
            request.content,
            httpx.Response(status, json=response, request=request),
            json.dumps(response).encode(),
        )

    good_response = {
        "sessionId": "s",
        "botVersion": None,
        "processedSequenceIds": [],
        "messages": [{"type": "text", "id": "m", "text": "hi"}],
        "_links": {"self": {"href": "x"}},
    }
    validator = SpecValidator()
    assert validator.check([exchange(INIT, good_response)]) == 1
    with pytest.raises(AssertionError, match="request POST"):
        validator.check(
            [exchange({**INIT, "message": {"text": "x", "sequenceId": 1}}, good_response)]
        )
    with pytest.raises(AssertionError, match="response POST"):
        validator.check([exchange(INIT, {**good_response, "_links": None})])
    bad_message = {"type": "escalate", "id": "e", "targets": [{"type": "Queue", "value": "q"}]}
    with pytest.raises(AssertionError, match="response POST"):
        validator.check([exchange(INIT, {**good_response, "messages": [bad_message]})])
