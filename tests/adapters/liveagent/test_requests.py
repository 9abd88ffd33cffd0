"""Exact request shapes and headers of the Live Agent adapter (respx), and its answers to them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig, LiveAgentError
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation

pytestmark = pytest.mark.anyio

HOST = "https://la.example.com"
BASE = f"{HOST}/chat/rest"
ORG, DEPLOYMENT, BUTTON = "00D000000000001", "572000000000001", "573000000000001"
KEY = "4eb90106-3410-4dd0-8f04-c4facf90a929!1519169434766!secret="
SESSION = "c1#1"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def backend() -> AsyncIterator[LiveAgentBackend]:
    config = LiveAgentConfig(
        endpoint=HOST,
        organization_id=ORG,
        deployment_id=DEPLOYMENT,
        button_id=BUTTON,
        backoff=0.001,
        message_gap=0,
        retries=2,
    )
    async with LiveAgentBackend(config) as instance:
        yield instance


def cursor(**overrides: ev.Scalar) -> dict[str, ev.Scalar]:
    values: dict[str, ev.Scalar] = {
        "key": KEY,
        "affinity": "73061fa0",
        "id": "241590f5",
        "poll_timeout": 30,
        "ack": -1,
        "sequence": -1,
        "offset": 0,
        "epoch": 0,
        "sequence_base": 0,
        "last_ordinal": 1,
        "joined": True,
    }
    values.update(overrides)
    return values


def conversation(**cursor_overrides: ev.Scalar) -> Conversation:
    return Conversation(
        id="c1",
        agent_session=SESSION,
        agent_backend="liveagent",
        agent_cursor=cursor(**cursor_overrides),
    )


def batch(
    sequence: int, *messages: tuple[str, dict[str, Any]], offset: int = 100
) -> httpx.Response:
    body = {
        "messages": [{"type": kind, "message": payload} for kind, payload in messages],
        "sequence": sequence,
        "offset": offset,
    }
    return httpx.Response(200, json=body)


async def collect(backend: LiveAgentBackend, conv: Conversation) -> list[ev.AgentEvent]:
    assert conv.agent_cursor is not None
    return [e async for e in backend.events(conv, SESSION, conv.agent_cursor)]


def open_request() -> fx.OpenAgentSession:
    context = fx.HandoffContext(
        conversation_id="c1",
        language="en",
        user_name="Jon A.",
        reason=ev.EscalationReason.USER_REQUEST,
        targets=(),
        prechat={"Email": "jon@example.com", "LastName": "Doe", "Empty": ""},
        # "Email" is also a pre-chat value: the one the user entered wins.
        variables={"OrderNumber": "A-1001", "VIP": True, "Email": "bot@example.com"},
        transcript=(fx.TranscriptEntry(sender="user", text="agent", at=0.0),),
    )
    return fx.OpenAgentSession(key="c1/2/1", session=SESSION, ordinal=1, context=context)


async def test_open_sends_session_id_then_chasitor_init(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    session_id = router.get("/System/SessionId").respond(
        200,
        json={"id": "241590f5", "key": KEY, "affinityToken": "73061fa0", "clientPollTimeout": "30"},
    )
    init = router.post("/Chasitor/ChasitorInit").respond(200, text="OK")
    result = await backend.open(Conversation.new("c1"), open_request())

    request = session_id.calls.last.request
    assert request.headers["X-LIVEAGENT-API-VERSION"] == "47"
    assert request.headers["X-LIVEAGENT-AFFINITY"] == "null"  # the literal string
    assert "X-LIVEAGENT-SESSION-KEY" not in request.headers
    request = init.calls.last.request
    assert request.headers["X-LIVEAGENT-AFFINITY"] == "73061fa0"
    assert request.headers["X-LIVEAGENT-SESSION-KEY"] == KEY
    assert request.headers["X-LIVEAGENT-SEQUENCE"] == "1"
    body = json.loads(request.content)
    assert body == {
        "organizationId": ORG,
        "deploymentId": DEPLOYMENT,
        "buttonId": BUTTON,
        "sessionId": "241590f5",
        "userAgent": "handoff/0.1 (bot-to-agent handoff)",
        "language": "en",
        "screenResolution": "n/a",
        "visitorName": "Jon A.",
        "prechatDetails": [
            {
                "label": "Email",
                "value": "jon@example.com",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
            {
                "label": "LastName",
                "value": "Doe",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
            {
                "label": "OrderNumber",
                "value": "A-1001",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
            {
                "label": "VIP",
                "value": "true",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
            {
                "label": "Handoff reason",
                "value": "user_request",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
            {
                "label": "Bot transcript",
                "value": "user: agent",
                "entityMaps": [],
                "transcriptFields": [],
                "displayToAgent": True,
            },
        ],
        "prechatEntities": [
            {
                "entityName": "Contact",
                "showOnCreate": False,
                "saveToTranscript": "ContactId",
                "entityFieldsMaps": [
                    {
                        "fieldName": "Email",
                        "label": "Email",
                        "doFind": True,
                        "isExactMatch": True,
                        "doCreate": False,
                    },
                    {
                        "fieldName": "LastName",
                        "label": "LastName",
                        "doFind": False,
                        "isExactMatch": True,
                        "doCreate": False,
                    },
                ],
            }
        ],
        "buttonOverrides": [],
        "receiveQueueUpdates": True,
        "isPost": True,
    }
    assert result["ack"] == -1
    assert result["affinity"] == "73061fa0"
    assert result["key"] == KEY
    assert result["poll_timeout"] == 30
    assert result["joined"] is False


async def test_button_and_agent_targets_become_overrides(backend: LiveAgentBackend) -> None:
    request = open_request()
    context = request.context
    targets = (
        ev.EscalationTarget(kind="agent", value="005A"),
        ev.EscalationTarget(kind="button", value="573B"),
        ev.EscalationTarget(kind="button", value="573C"),
    )
    body = backend.chasitor_init(
        fx.HandoffContext(**{**_fields(context), "targets": targets}), "sid"
    ).to_wire()
    assert body["buttonId"] == "573B"
    assert body["buttonOverrides"] == ["005A_573B", "573B", "573C"]


def _fields(context: fx.HandoffContext) -> dict[str, Any]:
    import attrs

    return attrs.asdict(context, recurse=False)


async def test_long_poll_acks_only_from_200_and_dedups_by_sequence(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    poll = router.get("/System/Messages").mock(
        side_effect=[
            batch(
                1,
                ("ChatRequestSuccess", {"queuePosition": 2, "estimatedWaitTime": 120}),
                ("QueueUpdate", {"position": 1, "estimatedWaitTime": -1}),
                offset=111,
            ),
            httpx.Response(204),
            batch(
                2,
                ("ChatEstablished", {"name": "Andy L.", "userId": "005"}),
                ("ChatMessage", {"name": "Andy L.", "text": "Hello"}),
                offset=222,
            ),
            batch(2, ("ChatMessage", {"name": "Andy L.", "text": "Hello"}), offset=222),
            httpx.Response(
                200,
                json={
                    "messages": [{"type": "ChatEnded", "message": {"reason": "agent"}}],
                    "sequence": 3,
                },
            ),
        ]
    )
    events = await collect(backend, conversation(joined=False))

    params = [(c.request.url.params["ack"], c.request.url.params["pc"]) for c in poll.calls]
    assert params == [("-1", "0"), ("1", "1"), ("1", "2"), ("2", "3"), ("2", "4")]
    for call in poll.calls:
        assert call.request.headers["X-LIVEAGENT-SESSION-KEY"] == KEY
        assert call.request.headers["X-LIVEAGENT-AFFINITY"] == "73061fa0"
        assert "X-LIVEAGENT-SEQUENCE" not in call.request.headers
        assert call.request.extensions["timeout"]["read"] == 40  # clientPollTimeout + margin
    assert [type(e).__name__ for e in events] == [
        "AgentAccepted",
        "QueueUpdated",
        "AgentJoined",
        "AgentMessage",
        "AgentEnded",
    ]
    accepted, queued, joined, message, ended = events
    assert (accepted.queue_position, accepted.estimated_wait) == (2, 120)
    assert (queued.queue_position, queued.estimated_wait) == (1, None)  # -1: unknown
    assert accepted.peer_id == "0:1:0"
    assert queued.peer_id == "0:1:1"
    # Only the last event of a batch carries the advanced ack.
    assert accepted.cursor is not None
    assert accepted.cursor["ack"] == -1
    assert queued.cursor is not None
    assert queued.cursor["ack"] == 1
    assert queued.cursor["offset"] == 111
    assert isinstance(joined, ev.AgentJoined)
    assert joined.agent_name == "Andy L."
    assert isinstance(message, ev.AgentMessage)
    assert message.text == "Hello"
    assert message.cursor is not None
    assert message.cursor["ack"] == 2
    assert isinstance(ended, ev.AgentEnded)
    assert ended.reason == "agent"
    assert ended.cursor is not None
    assert ended.cursor["offset"] == 222
    assert backend.stats["duplicate_batches"] == 1


async def test_typing_both_in_one_batch_keeps_not_typing(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/System/Messages").mock(
        side_effect=[
            batch(1, ("AgentNotTyping", {}), ("AgentTyping", {})),
            batch(2, ("AgentTyping", {}), ("AgentDisconnect", {}), ("ChatEnded", {})),
        ]
    )
    events = await collect(backend, conversation())
    typing = [e.typing for e in events if isinstance(e, ev.AgentTyping)]
    assert typing == [False, True]
    assert isinstance(events[-1], ev.AgentEnded)
    assert events[-1].reason == "unknown"


async def test_chat_request_fail_before_join_is_a_rejection(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/System/Messages").mock(
        return_value=batch(1, ("ChatRequestFail", {"reason": "Unavailable"}))
    )
    (event,) = await collect(backend, conversation(joined=False))
    assert isinstance(event, ev.TransferRejected)
    assert event.reason is ev.RejectReason.NO_AGENT_AVAILABLE


async def test_chat_request_fail_after_join_ends_the_chat(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/System/Messages").mock(
        return_value=batch(1, ("ChatRequestFail", {"reason": "InternalFailure"}))
    )
    (event,) = await collect(backend, conversation(joined=True))
    assert isinstance(event, ev.AgentEnded)
    assert "InternalFailure" in event.reason


@pytest.mark.parametrize(
    ("status", "joined", "expected"),
    [
        (403, True, ev.BackendSessionLost),
        (403, False, ev.TransferRejected),
        (409, True, ev.BackendSessionLost),
        (409, False, ev.TransferRejected),
        (500, False, ev.TransferRejected),
        (404, True, ev.BackendSessionLost),
    ],
)
async def test_poll_status_codes_end_with_a_reason(
    router: respx.MockRouter,
    backend: LiveAgentBackend,
    status: int,
    joined: bool,
    expected: type[ev.AgentEvent],
) -> None:
    poll = router.get("/System/Messages").respond(status)
    (event,) = await collect(backend, conversation(joined=joined))
    assert isinstance(event, expected)
    assert str(status) in getattr(event, "description", "")
    assert len(poll.calls) == (1 + backend.config.retries if status == 500 else 1)


async def test_transport_errors_retry_with_the_same_ack(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    poll = router.get("/System/Messages").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            batch(5, ("ChatEnded", {"reason": "agent"})),
        ]
    )
    events = await collect(backend, conversation(ack=4, sequence=4))
    assert [c.request.url.params["ack"] for c in poll.calls] == ["4", "4", "4"]
    assert isinstance(events[-1], ev.AgentEnded)


def forward(ordinal: int, text: str = "hi") -> fx.ForwardToAgent:
    return fx.ForwardToAgent(key=f"c1/9/{ordinal}", session=SESSION, ordinal=ordinal, text=text)


async def test_posts_carry_the_ordinal_as_sequence_and_reuse_it_on_retry(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    message = router.post("/Chasitor/ChatMessage").mock(
        side_effect=[httpx.ReadError("cut"), httpx.Response(200)]
    )
    typing = router.post("/Chasitor/ChasitorTyping").respond(202)
    not_typing = router.post("/Chasitor/ChasitorNotTyping").respond(200)
    conv = conversation(sequence_base=0)
    await backend.send(conv, forward(2, "I have a question"))
    await backend.typing(conv, fx.SetAgentTyping(key="k", session=SESSION, ordinal=3, typing=True))
    await backend.typing(conv, fx.SetAgentTyping(key="k", session=SESSION, ordinal=4, typing=False))
    assert [c.request.headers["X-LIVEAGENT-SEQUENCE"] for c in message.calls] == ["2", "2"]
    assert json.loads(message.calls.last.request.content) == {"text": "I have a question"}
    assert message.calls.last.request.headers["content-type"] == "application/json"
    assert typing.calls.last.request.headers["X-LIVEAGENT-SEQUENCE"] == "3"
    assert json.loads(typing.calls.last.request.content) == {}
    assert not_typing.calls.last.request.headers["X-LIVEAGENT-SEQUENCE"] == "4"


async def test_close_sends_chat_end_unless_the_peer_closed(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    end = router.post("/Chasitor/ChatEnd").respond(403)  # the agent ended first: tolerated
    conv = conversation()
    await backend.close(
        conv,
        fx.CloseAgentSession(key="k", session=SESSION, ordinal=7, reason=fx.CloseReason.USER_ENDED),
    )
    assert json.loads(end.calls.last.request.content) == {"reason": "client"}
    assert end.calls.last.request.headers["X-LIVEAGENT-SEQUENCE"] == "7"
    await backend.close(
        conv,
        fx.CloseAgentSession(
            key="k", session=SESSION, ordinal=8, reason=fx.CloseReason.AGENT_ENDED, peer_closed=True
        ),
    )
    assert len(end.calls) == 1


async def test_503_runs_the_documented_reconnect_then_resends(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    message = router.post("/Chasitor/ChatMessage").mock(
        side_effect=[httpx.Response(503), httpx.Response(200)]
    )
    reconnect = router.get("/System/ReconnectSession").respond(
        200,
        json={
            "messages": [
                {
                    "type": "ReconnectSession",
                    "message": {"resetSequence": True, "affinityToken": "efae1fa0"},
                }
            ]
        },
    )
    poll = router.get("/System/Messages").mock(
        return_value=batch(1, ("ChasitorSessionData", {"queuePosition": 0, "chatMessages": []}))
    )
    resync = router.post("/Chasitor/ChasitorResyncState").respond(200)
    conv = conversation(offset=54647226, ack=9, sequence=9, last_ordinal=4)
    await backend.send(conv, forward(5, "are you there?"))

    request = reconnect.calls.last.request
    assert request.url.params["ReconnectSession.offset"] == "54647226"
    assert request.headers["X-LIVEAGENT-AFFINITY"] == "null"
    assert request.headers["X-LIVEAGENT-SESSION-KEY"] == KEY
    assert poll.calls.last.request.url.params["ack"] == "-1"
    assert poll.calls.last.request.headers["X-LIVEAGENT-AFFINITY"] == "efae1fa0"
    request = resync.calls.last.request
    assert json.loads(request.content) == {"organizationId": ORG}
    assert "X-LIVEAGENT-SEQUENCE" not in request.headers
    first, retried = message.calls
    assert first.request.headers["X-LIVEAGENT-SEQUENCE"] == "5"
    assert retried.request.headers["X-LIVEAGENT-SEQUENCE"] == "1"  # reset by the reconnect
    assert retried.request.headers["X-LIVEAGENT-AFFINITY"] == "efae1fa0"
    # The poller delivers the batch the reconnect polled, then reports the new cursor.
    router.get("/System/Messages").mock(side_effect=[batch(2, ("ChatEnded", {"reason": "agent"}))])
    events = await collect(backend, conv)
    assert events[0].cursor is not None
    assert events[0].cursor["affinity"] == "efae1fa0"
    assert events[0].cursor["epoch"] == 1
    assert events[0].cursor["sequence_base"] == 4
    assert isinstance(events[-1], ev.AgentEnded)
    assert events[-1].peer_id == "1:2:0"


async def test_send_failing_for_good_raises_with_the_status(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.post("/Chasitor/ChatMessage").respond(400, text="bad JSON")
    with pytest.raises(LiveAgentError, match="Chasitor/ChatMessage answered 400: bad JSON") as info:
        await backend.send(conversation(), forward(2))
    assert info.value.status == 400
    assert KEY not in str(info.value)


async def test_availability_asks_for_the_button_and_follows_switch_server(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/Visitor/Availability").respond(
        200,
        json={
            "messages": [
                {"type": "SwitchServer", "message": {"newUrl": "https://moved.example.com/chat"}}
            ]
        },
    )
    moved = router.route(
        method="GET", host="moved.example.com", path="/chat/rest/Visitor/Availability"
    ).respond(
        200,
        json={
            "messages": [
                {
                    "type": "Availability",
                    "message": {
                        "results": [{"id": BUTTON, "isAvailable": True, "estimatedWaitTime": 30}]
                    },
                }
            ]
        },
    )
    check = fx.CheckAgentAvailability(key="k", targets=(), language="en")
    assert await backend.check_availability(Conversation.new("c1"), check) is True
    params = moved.calls.last.request.url.params
    assert params["org_id"] == ORG
    assert params["deployment_id"] == DEPLOYMENT
    assert params["Availability.ids"] == BUTTON
    assert params["Availability.needEstimatedWaitTime"] == "1"
    assert "X-LIVEAGENT-SESSION-KEY" not in moved.calls.last.request.headers


async def test_availability_absent_flag_means_unavailable(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/Visitor/Availability").respond(
        200, json={"messages": [{"type": "Availability", "message": {"results": [{"id": BUTTON}]}}]}
    )
    check = fx.CheckAgentAvailability(key="k", targets=(), language="en")
    assert await backend.check_availability(Conversation.new("c1"), check) is False
