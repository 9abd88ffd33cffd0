"""Exact shapes and bad input, without a server (httpx.MockTransport), plus a parser fuzz."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff_adapters._http import HttpClients
from handoff_adapters.einstein import EinsteinBot, EinsteinConfig, StaticToken, wire
from handoff_adapters.einstein.client import flatten_variables, typed_variables
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import RemoteProtocolError

CONFIG = EinsteinConfig(
    runtime_url="https://runtime.example",
    org_id="00Dx0000000ALsk",
    bot_id="0XxBOT",
    force_endpoint="https://org.my.salesforce.com/",
    integration_name="handoff",
    timezone="Europe/Paris",
    retry_base=0.0,
)


def envelope(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "sessionId": "s-1",
        "botVersion": "v",
        "processedSequenceIds": [],
        "messages": messages,
        "_links": None,
        **extra,
    }


class Peer:
    """Answers each request with the next canned (status, body, headers)."""

    def __init__(self, *answers: tuple[int, Any, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self.answers.pop(0)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)


async def send(peer: Peer, text: str = "hi", cursor: Any = None) -> list[ev.BotEvent]:
    conversation = Conversation(id="c1", bot_cursor=cursor)
    async with HttpClients(transport=httpx.MockTransport(peer)) as http:
        bot = EinsteinBot(CONFIG, StaticToken("t"), http=http)
        return list(await bot.send(conversation, fx.ForwardToBot(key="c1/1/0", text=text)))


pytestmark = pytest.mark.anyio


async def test_start_request_shape() -> None:
    peer = Peer(
        (200, envelope([{"type": "text", "id": "m1", "text": "Hello"}]), {"X-Runtime-CRC": "42"})
    )
    events = await send(peer)
    (request,) = peer.requests
    assert str(request.url) == "https://runtime.example/v5.3.0/bots/0XxBOT/sessions"
    assert request.headers["x-org-id"] == "00Dx0000000ALskEAG"
    body = json.loads(request.content)
    assert body == {
        "externalSessionKey": body["externalSessionKey"],
        "forceConfig": {"endpoint": "https://org.my.salesforce.com/"},
        "message": {"text": "hi"},
        "tz": "Europe/Paris",
        "variables": [
            {"name": "$Context.IntegrationType", "type": "text", "value": "API"},
            {"name": "$Context.IntegrationName", "type": "text", "value": "handoff"},
        ],
        "responseOptions": {"variables": {"include": True, "onlyChanged": False}},
    }
    (event,) = events
    assert isinstance(event, ev.BotReplied)
    assert event.text == "Hello"
    assert event.cursor is not None
    assert event.cursor["crc"] == "42"
    assert event.cursor["session"] == "s-1"


async def test_unknown_message_types_are_skipped_not_fatal() -> None:
    peer = Peer(
        (
            200,
            envelope(
                [
                    {"type": "messageDefinition", "id": "x", "staticContent": {}},
                    {"type": "text", "id": "m", "text": "ok"},
                ]
            ),
            {},
        )
    )
    assert [e.text for e in await send(peer) if isinstance(e, ev.BotReplied)] == ["ok"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (envelope([{"type": "text", "id": "m"}]), "$.messages[0].text"),
        (
            envelope([{"type": "escalate", "id": "e", "targets": [{"type": "x"}]}]),
            "$.messages[0].targets[0].value",
        ),
        (envelope([{"type": "choices", "id": "c", "choices": "1,2"}]), "$.messages[0].choices"),
        ({"sessionId": "s"}, "$.messages"),
        (envelope([], variables=[{"name": "x"}]), "$.variables[0].type"),
        ([1, 2], "expected a JSON object"),
    ],
)
async def test_malformed_answers_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        await send(Peer((200, body, {})))
    assert field in str(info.value)


async def test_non_json_answer_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError, match="not JSON"):
        await send(Peer((200, b"<html>", {})))


async def test_http_date_retry_after_and_refused_connection_are_retried() -> None:
    calls = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        if calls == 2:
            return httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
        return httpx.Response(200, json=envelope([{"type": "text", "id": "m", "text": "ok"}]))

    conversation = Conversation(id="c1")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with HttpClients(transport=httpx.MockTransport(flaky)) as http:
        bot = EinsteinBot(CONFIG, StaticToken("t"), http=http, sleep=sleep)
        events = await bot.send(conversation, fx.ForwardToBot(key="k", text="hi"))
    assert calls == 3
    assert waits[1] == 0.0  # a date in the past: no wait
    assert isinstance(events[0], ev.BotReplied)


async def test_an_unreadable_cursor_starts_a_fresh_session() -> None:
    peer = Peer((200, envelope([{"type": "text", "id": "m", "text": "fresh"}]), {}))
    events = await send(peer, cursor={"bot": 3, "session": "old"})
    assert peer.requests[0].url.path.endswith("/bots/0XxBOT/sessions")
    assert events[0].cursor is not None
    assert events[0].cursor["session"] == "s-1"


async def test_escalate_targets_map_to_kinds_and_bot_targets_to_transfers() -> None:
    targets = [
        {"type": wire.TARGET_SKILL, "value": "0Sk1"},
        {"type": wire.TARGET_FLOW, "value": "300F"},
        {"type": "Salesforce:Core:Future:Id", "value": "f"},
    ]
    peer = Peer((200, envelope([{"type": "escalate", "id": "e1", "targets": targets}]), {}))
    (escalated,) = await send(peer)
    assert isinstance(escalated, ev.BotEscalated)
    assert [(t.kind, t.value) for t in escalated.targets] == [
        ("skill", "0Sk1"),
        ("flow", "300F"),
        ("Salesforce:Core:Future:Id", "f"),
    ]
    peer = Peer((200, envelope([{"type": "escalate", "id": "e2", "targets": []}]), {}))
    (escalated,) = await send(peer)
    assert isinstance(escalated, ev.BotEscalated)
    assert escalated.targets == ()
    peer = Peer(
        (
            200,
            envelope(
                [
                    {
                        "type": "escalate",
                        "id": "e3",
                        "targets": [{"type": wire.TARGET_BOT, "value": "0XxOTHER"}],
                    }
                ]
            ),
            {},
        )
    )
    (transfer,) = await send(peer)
    assert isinstance(transfer, ev.BotTransferRequested)
    assert transfer.target_bot == "0XxOTHER"


def test_variables_round_trip_through_the_flat_form() -> None:
    variables = (
        wire.Variable(name="Name", type="text", value="Ada"),
        wire.Variable(name="Qty", type="number", value=3),
        wire.Variable(name="When", type="date", value="2024-01-02"),
        wire.Variable(
            name="Address",
            type="object",
            value=[{"name": "city", "type": "text", "value": "Paris"}],
        ),
        wire.Variable(name="Cases", type="list", value=[{"type": "ref", "value": "500x"}]),
        wire.Variable(name="Empty", type="text", value=None),
    )
    flat, types = flatten_variables(variables)
    assert flat["Address"] == '[{"name":"city","type":"text","value":"Paris"}]'
    back = typed_variables({**flat, "$Context.EndUserId": "u"}, types)
    assert {v["name"]: (v["type"], v["value"]) for v in back} == {
        "Name": ("text", "Ada"),
        "Qty": ("number", 3),
        "When": ("date", "2024-01-02"),
        "Address": ("object", [{"name": "city", "type": "text", "value": "Paris"}]),
        "Cases": ("list", [{"type": "ref", "value": "500x"}]),
        "Empty": ("text", None),
    }


def test_variables_of_unknown_or_mismatched_type_are_sent_as_text() -> None:
    types = {"Qty": "number", "VIP": "boolean", "Cases": "list", "Odd": "currency", "D": "date"}
    values: dict[str, ev.Scalar] = {
        "Extra": 1.5,  # no type known: text, whatever its JSON type
        "Flag": True,
        "Note": "hi",
        "Nothing": None,
        "Qty": "three",  # a number variable holding text (set by another source)
        "VIP": "yes",
        "Cases": "not json",
        "Odd": "x",  # a type the spec does not know
        "D": None,  # null fits every type
    }
    back = typed_variables(values, types)
    assert {v["name"]: (v["type"], v["value"]) for v in back} == {
        "Extra": ("text", "1.5"),
        "Flag": ("text", "true"),
        "Note": ("text", "hi"),
        "Nothing": ("text", None),
        "Qty": ("text", "three"),
        "VIP": ("text", "yes"),
        "Cases": ("text", "not json"),
        "Odd": ("text", "x"),
        "D": ("date", None),
    }


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
MESSAGE = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "choices", "escalate", "sessionEnded", "other"])},
    optional={
        "id": JSON | st.text(max_size=4),
        "text": JSON,
        "choices": JSON,
        "targets": JSON,
        "reason": JSON,
        "widget": JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "sessionId": JSON,
            "botVersion": JSON,
            "processedSequenceIds": JSON,
            "messages": st.lists(MESSAGE | JSON, max_size=4),
            "variables": JSON,
            "_links": JSON,
        },
    )
    | JSON
)
def test_parsing_any_json_either_succeeds_or_names_a_protocol_error(data: Any) -> None:
    try:
        parsed: object = wire.parse_response(data)
    except RemoteProtocolError as exc:
        parsed = exc
    if isinstance(parsed, RemoteProtocolError):
        assert parsed.message.startswith("Einstein response")
    else:
        assert isinstance(parsed, wire.ResponseEnvelope)
