"""Malformed or unexpected Live Agent responses end as RemoteProtocolError naming what was wrong."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig, wire
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import RemoteProtocolError
from tests.adapters.liveagent.test_requests import (
    BASE,
    HOST,
    SESSION,
    collect,
    conversation,
    open_request,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def backend() -> AsyncIterator[LiveAgentBackend]:
    config = LiveAgentConfig(
        endpoint=HOST,
        organization_id="00D",
        deployment_id="572",
        button_id="573",
        backoff=0.001,
        message_gap=0,
        retries=1,
    )
    async with LiveAgentBackend(config) as instance:
        yield instance


def _endless(request: httpx.Request) -> httpx.Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    return httpx.Response(200, content=chunks())


@pytest.mark.parametrize(
    ("response", "names"),
    [
        (httpx.Response(200, text="<html>Service Unavailable</html>"), "not JSON"),
        (httpx.Response(200, json=[1, 2]), "expected a JSON object"),
        (
            httpx.Response(200, json={"messages": []}),
            "required field missing @ System/Messages $.sequence",
        ),
        (httpx.Response(200, json={"messages": "x", "sequence": 1}), "$.messages"),
        (httpx.Response(200, json={"messages": [], "sequence": "7"}), "$.sequence"),
        (httpx.Response(200, json={"messages": [{"message": {}}], "sequence": 1}), "[0].type"),
        (
            httpx.Response(
                200,
                json={
                    "messages": [{"type": "ChatMessage", "message": {"name": "A"}}],
                    "sequence": 1,
                },
            ),
            "ChatMessage $.text",
        ),
        (
            httpx.Response(
                200,
                json={
                    "messages": [{"type": "ChatMessage", "message": {"text": 42}}],
                    "sequence": 1,
                },
            ),
            "ChatMessage $.text",
        ),
        (
            httpx.Response(
                200,
                json={
                    "messages": [{"type": "QueueUpdate", "message": {"position": "3"}}],
                    "sequence": 1,
                },
            ),
            "QueueUpdate $.position",
        ),
        (
            httpx.Response(
                200, headers={"content-length": str(wire.MAX_BODY_BYTES + 1)}, content=b"{}"
            ),
            "too large",
        ),
        (None, "larger than"),  # streamed without a length: see _endless
    ],
)
async def test_malformed_poll_responses_raise_remote_protocol_error(
    router: respx.MockRouter, backend: LiveAgentBackend, response: httpx.Response | None, names: str
) -> None:
    if response is None:
        router.get("/System/Messages").mock(side_effect=_endless)
    else:
        router.get("/System/Messages").mock(return_value=response)
    end = router.post("/Chasitor/ChatEnd").respond(200)
    with pytest.raises(RemoteProtocolError) as info:
        await collect(backend, conversation())
    assert names in str(info.value)
    assert len(end.calls) == 1  # the chat is ended so no agent waits on a ghost


async def test_unknown_types_are_skipped_and_logged_once(
    router: respx.MockRouter, backend: LiveAgentBackend, caplog: pytest.LogCaptureFixture
) -> None:
    router.get("/System/Messages").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "messages": [
                        {"type": "HologramCall", "message": {"x": 1}},
                        {"type": "HologramCall"},
                    ],
                    "sequence": 1,
                },
            ),
            httpx.Response(
                200,
                json={
                    "messages": [{"type": "HologramCall"}, {"type": "ChatEnded", "message": None}],
                    "sequence": 2,
                },
            ),
        ]
    )
    LiveAgentBackend._unknown_types_logged.discard("HologramCall")
    with caplog.at_level(logging.WARNING, logger="handoff.liveagent"):
        events = await collect(backend, conversation())
    assert [type(e).__name__ for e in events] == ["AgentCursorAdvanced", "AgentEnded"]
    assert sum("HologramCall" in r.message for r in caplog.records) == 1


async def test_bad_session_id_response_fails_open(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.get("/System/SessionId").respond(200, json={"id": "x", "affinityToken": "a"})
    with pytest.raises(RemoteProtocolError, match=r"System/SessionId \$\.key"):
        await backend.open(Conversation.new("c1"), open_request())


async def test_bad_reconnect_response_fails_the_send(
    router: respx.MockRouter, backend: LiveAgentBackend
) -> None:
    router.post("/Chasitor/ChatMessage").respond(503)
    router.get("/System/ReconnectSession").respond(200, json={"messages": []})
    from handoff_core import effects as fx

    message = fx.ForwardToAgent(key="k", session=SESSION, ordinal=2, text="hi")
    with pytest.raises(RemoteProtocolError, match="no ReconnectSession message"):
        await backend.send(conversation(), message)


async def test_a_bad_cursor_is_refused_by_name(backend: LiveAgentBackend) -> None:
    with pytest.raises(RemoteProtocolError, match="cursor: 'id' missing"):
        await collect(
            backend,
            Conversation(
                id="c1", agent_session=SESSION, agent_cursor={"key": "k", "affinity": "a"}
            ),
        )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_messages = st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(sorted(wire.PAYLOADS)) | st.text(max_size=6),
                    "message": st.dictionaries(
                        st.sampled_from(
                            [
                                "text",
                                "name",
                                "position",
                                "queuePosition",
                                "reason",
                                "estimatedWaitTime",
                            ]
                        ),
                        _json,
                        max_size=3,
                    ),
                }
            ),
            max_size=3,
        ),
        "sequence": st.integers(min_value=-2, max_value=5) | _json,
    },
)


@settings(
    max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(body=_json | _messages)
def test_any_json_parses_or_raises_remote_protocol_error(body: object) -> None:
    """Fuzz: the wire layer never raises anything but RemoteProtocolError."""
    raw = json.dumps(body).encode()
    try:
        parsed = wire.parse_messages(wire.decode_json(raw, "System/Messages"))
        for message in parsed.messages:
            wire.parse_payload(message, "System/Messages")
    except RemoteProtocolError:
        pass


def test_event_fields_from_the_wire_are_valid_core_events() -> None:
    # Negative and -1 values from the server become "unknown", never an invalid core event.
    parsed = wire.parse_payload(
        wire.Message(type="QueueUpdate", message={"position": -4, "estimatedWaitTime": -1}), "x"
    )
    from handoff_adapters.liveagent.client import _position, _wait

    event = ev.QueueUpdated(
        at=0.0,
        session="s",
        queue_position=_position(parsed.position),
        estimated_wait=_wait(parsed.estimated_wait_time),
    )
    assert event.queue_position is None
    assert event.estimated_wait is None
