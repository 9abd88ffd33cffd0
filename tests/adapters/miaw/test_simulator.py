"""The simulator speaks the reference's status codes, and its HTTP control API drives agents."""

from __future__ import annotations

import uuid

import httpx
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.miaw.simulator import MiawSimulator
from tests.adapters.miaw.helpers import miaw_stack

pytestmark = pytest.mark.anyio

API = "/iamessage/api/v2"
TOKEN_BODY = {
    "orgId": "00DSIM000000001XYZ",
    "esDeveloperName": "handoff_sim",
    "capabilitiesVersion": "1",
    "platform": "Web",
}


async def test_status_codes_of_the_reference() -> None:
    sim = MiawSimulator()
    async with serve(sim.app) as url, httpx.AsyncClient(base_url=url) as client:
        wrong = await client.post(
            f"{API}/authorization/unauthenticated/access-token",
            json={**TOKEN_BODY, "esDeveloperName": "nope"},
        )
        assert wrong.status_code == 404
        issued = await client.post(
            f"{API}/authorization/unauthenticated/access-token", json=TOKEN_BODY
        )
        assert issued.status_code == 200
        token = issued.json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.post(f"{API}/conversation", json={})).status_code == 401
        upper = await client.post(
            f"{API}/conversation",
            headers=auth,
            json={"conversationId": str(uuid.uuid4()).upper(), "esDeveloperName": "handoff_sim"},
        )
        assert upper.status_code == 400
        assert "UUID format" in upper.json()["message"]
        no_org = await client.get("/eventrouter/v1/sse", headers={**auth, "Last-Event-Id": "0"})
        assert no_org.status_code == 400
        no_id = await client.get(
            "/eventrouter/v1/sse", headers={**auth, "X-Org-Id": "00DSIM000000001"}
        )
        assert no_id.status_code == 400
        cid = str(uuid.uuid4())
        created = await client.post(
            f"{API}/conversation",
            headers=auth,
            json={"conversationId": cid, "esDeveloperName": "handoff_sim"},
        )
        assert created.is_success
        sim.end(cid)
        message = {
            "id": str(uuid.uuid4()),
            "messageType": "StaticContentMessage",
            "staticContent": {"formatType": "Text", "text": "hi"},
        }
        ended = await client.post(
            f"{API}/conversation/{cid}/message",
            headers=auth,
            json={"message": message, "esDeveloperName": "handoff_sim"},
        )
        assert ended.status_code == 417
        sim.fail_next("message", 429, retry_after=2)
        limited = await client.post(
            f"{API}/conversation/{cid}/message",
            headers=auth,
            json={
                "message": message,
                "esDeveloperName": "handoff_sim",
                "isNewMessagingSession": True,
            },
        )
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "2"
        sim.expire_tokens()
        expired = await client.get(f"{API}/conversation/{cid}", headers=auth)
        assert expired.status_code == 401


async def test_control_api_drives_the_agent_with_a_join_delay() -> None:
    sim = MiawSimulator(auto_join="Ada", join_delay=0.05, echo=True)
    async with miaw_stack(sim) as stack, httpx.AsyncClient(base_url=stack.url) as control:
        miaw = await stack.escalate()
        assert miaw.agent is None  # not yet: the join is delayed
        await stack.wait_text("Ada has joined the chat.")
        listed = (await control.get("/_control/conversations")).json()
        assert [item["id"] for item in listed] == [miaw.id]
        said = await control.post(
            f"/_control/conversations/{miaw.id}/say", json={"text": "from the control API"}
        )
        assert said.status_code == 200
        await stack.wait_text("from the control API")
        await stack.runtime.user_said("c1", "ping")
        await stack.wait_text("You said: ping")  # the echoing agent
        faults = await control.post(
            "/_control/faults", json={"drop_streams": True, "event_delay": 0.01}
        )
        assert faults.json()["event_delay"] == 0.01
        await control.post(f"/_control/conversations/{miaw.id}/transfer", json={"name": "Bo"})
        await stack.wait_text("You are being transferred to Bo.")
        missing = await control.post("/_control/conversations/nope/join", json={})
        assert missing.status_code == 404
        await control.post(f"/_control/conversations/{miaw.id}/end")
        await stack.wait_key("conversationClosedMessage")
