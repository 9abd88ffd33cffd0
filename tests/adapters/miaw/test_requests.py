"""The exact requests the backend sends (respx), for what the simulator cannot judge alone."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import respx

from handoff_adapters._http import HttpClients
from handoff_adapters.miaw import MiawBackend, conversation_uuid
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation

pytestmark = pytest.mark.anyio

URL = "https://example.my.salesforce-scrt.com"
ORG = "00DXX0000001234EAA"  # 18 characters: sent as its first 15


def _jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'sub': 'guest-1', 'exp': exp})}.sig"


TOKEN = _jwt(4_102_444_800)  # 2100


def _context(conversation_id: str) -> fx.HandoffContext:
    return fx.HandoffContext(
        conversation_id=conversation_id,
        language="en",
        user_name="Ada",
        reason=ev.EscalationReason.USER_REQUEST,
        targets=(),
        prechat={"_email": "ada@example.com", "VIP": True, "Empty": None},
        variables={},
        transcript=(),
    )


async def test_open_send_typing_close_request_shapes() -> None:
    with respx.mock(base_url=URL, assert_all_called=True) as mock:
        token = mock.post("/iamessage/api/v2/authorization/unauthenticated/access-token").respond(
            json={"accessToken": TOKEN, "lastEventId": "2147867834"}
        )
        sse = mock.get("/eventrouter/v1/sse").respond(
            headers={"content-type": "text/event-stream"}, content=b""
        )
        create = mock.post("/iamessage/api/v2/conversation").respond(201, json={})
        session = "c1#1"
        cid = conversation_uuid(session)
        message = mock.post(f"/iamessage/api/v2/conversation/{cid}/message").respond(202, json={})
        typing = mock.post(f"/iamessage/api/v2/conversation/{cid}/entry").respond(202)
        close = mock.delete(f"/iamessage/api/v2/conversation/{cid}").respond(204)

        async with HttpClients() as clients:
            backend = MiawBackend(URL, ORG, "my_deployment", clients=clients)
            conversation = Conversation.new("c1", language="en")
            request = fx.OpenAgentSession(
                key="c1/3/1", session=session, ordinal=1, context=_context("c1")
            )
            cursor = await backend.open(conversation, request)
            conversation = Conversation(id="c1", agent_session=session, agent_cursor=cursor)
            forward = fx.ForwardToAgent(key="c1/4/0", session=session, ordinal=2, text="hello")
            await backend.send(conversation, forward)
            await backend.typing(
                conversation,
                fx.SetAgentTyping(key="c1/5/0", session=session, ordinal=3, typing=True),
            )
            await backend.close(
                conversation,
                fx.CloseAgentSession(
                    key="c1/6/0", session=session, ordinal=4, reason=fx.CloseReason.USER_ENDED
                ),
            )
        order = [(call.request.method, call.request.url.path) for call in mock.calls]

    body = json.loads(token.calls[0].request.content)
    assert body["orgId"] == ORG[:15]
    assert body["esDeveloperName"] == "my_deployment"
    assert body["capabilitiesVersion"] == "1"
    assert body["platform"] == "Web"
    assert "Authorization" not in token.calls[0].request.headers

    headers = sse.calls[0].request.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-org-id"] == ORG[:15]
    assert headers["last-event-id"] == "2147867834"
    assert headers["accept"] == "text/event-stream"
    # The stream was opened before the conversation was created (reference §10).
    assert order[1:3] == [
        ("GET", "/eventrouter/v1/sse"),
        ("POST", "/iamessage/api/v2/conversation"),
    ]

    created = json.loads(create.calls[0].request.content)
    assert created["conversationId"] == cid == cid.lower()
    assert uuid.UUID(cid).version == 4
    assert created["routingAttributes"] == {"_email": "ada@example.com", "VIP": True}
    assert created["language"] == "en"

    sent = json.loads(message.calls[0].request.content)
    assert sent["message"]["messageType"] == "StaticContentMessage"
    assert sent["message"]["staticContent"] == {"formatType": "Text", "text": "hello"}
    assert sent["isNewMessagingSession"] is False
    assert message.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"
    # Same key, same id: a re-run step re-sends the same message.
    assert sent["message"]["id"] == str(
        uuid.UUID(
            bytes=uuid.uuid5(
                uuid.UUID("5f0b6a52-0d8e-4d47-9a4e-6e1c0f3a9b21"), "message:c1/4/0"
            ).bytes,
            version=4,
        )
    )

    assert json.loads(typing.calls[0].request.content)["entryType"] == "TypingStartedIndicator"
    assert close.calls[0].request.url.params["esDeveloperName"] == "my_deployment"
    assert TOKEN not in repr(backend)


async def test_open_is_deterministic_per_session() -> None:
    assert conversation_uuid("c1#1") == conversation_uuid("c1#1")
    assert conversation_uuid("c1#1") != conversation_uuid("c1#2")
    # The fallback when the id belongs to another identity: one id per identity.
    assert conversation_uuid("c1#1", "guest-1") != conversation_uuid("c1#1", "guest-2")
    assert conversation_uuid("c1#1", "guest-1") != conversation_uuid("c1#1")


async def test_a_failed_create_closes_the_stream() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.post("/iamessage/api/v2/authorization/unauthenticated/access-token").respond(
            json={"accessToken": TOKEN, "lastEventId": "1"}
        )
        mock.get("/eventrouter/v1/sse").respond(
            headers={"content-type": "text/event-stream"}, content=b""
        )
        mock.post("/iamessage/api/v2/conversation").respond(
            400, json={"message": "Specify the conversationId in UUID format."}
        )
        async with MiawBackend(URL, ORG, "my_deployment") as backend:
            request = fx.OpenAgentSession(
                key="c1/3/1", session="c1#1", ordinal=1, context=_context("c1")
            )
            with pytest.raises(Exception, match="UUID format"):
                await backend.open(Conversation.new("c1"), request)
            assert not backend._live
