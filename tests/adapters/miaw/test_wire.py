"""Parsing MIAW JSON: tolerant of extras, strict about what we rely on, errors name the field."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff_adapters.miaw import wire
from handoff_adapters.miaw.client import entry_text
from handoff_core.errors import RemoteProtocolError

SSE_MESSAGE = {
    "channelPlatformKey": "ec935ff5",
    "channelType": "embedded_messaging",
    "conversationId": "01c25401-3353-444e-8323-ace07e1b7375",
    "conversationEntry": {
        "senderDisplayName": "Jane Agent",
        "identifier": "04d4fa0e-fdd7-464e-88c7-c68a933bd311",
        "entryType": "Message",
        "entryPayload": json.dumps(
            {
                "entryType": "Message",
                "id": "04d4fa0e-fdd7-464e-88c7-c68a933bd311",
                "abstractMessage": {
                    "messageType": "StaticContentMessage",
                    "inReplyToMessageId": None,
                    "id": "04d4fa0e-fdd7-464e-88c7-c68a933bd311",
                    "references": [],
                    "staticContent": {"formatType": "Text", "text": "hi"},
                },
                "messageReason": None,
            }
        ),
        "sender": {"role": "Agent", "appType": "agent", "subject": "005xx", "clientIdentifier": ""},
        "contextParamMap": {},
        "transcriptedTimestamp": 1741299980669,
        "clientTimestamp": 1741299980500,
        "clientDuration": 0,
    },
}


def test_sse_message_decodes_twice() -> None:
    envelope = wire.parse(SSE_MESSAGE, wire.EventEnvelope, "event")
    entry = envelope.conversation_entry
    assert entry.sender is not None
    assert entry.sender.role == "Agent"
    assert entry.transcripted_timestamp == 1741299980669
    payload = wire.decode_entry_payload(entry, wire.MessagePayload)
    assert entry_text(payload) == "hi"


def test_entries_list_payload_is_an_object() -> None:
    entry = dict(SSE_MESSAGE["conversationEntry"])  # type: ignore[arg-type]
    entry["entryPayload"] = json.loads(entry["entryPayload"])
    page = wire.parse({"conversationEntries": [entry]}, wire.EntriesPage, "entries")
    payload = wire.decode_entry_payload(page.conversation_entries[0], wire.MessagePayload)
    assert entry_text(payload) == "hi"


def _routing(**fields: object) -> wire.RoutingResultPayload:
    data = {"entryType": "RoutingResult", "routingType": "Initial", **fields}
    entry = wire.ConversationEntry(
        identifier="e1", entry_type="RoutingResult", entry_payload=json.dumps(data)
    )
    return wire.decode_entry_payload(entry, wire.RoutingResultPayload)


NESTED = {"estimatedWaitTimeInSeconds": 120, "isEWTRequested": True}


@pytest.mark.parametrize(
    ("fields", "wait"),
    [
        # The flat number of the reference (iOS SDK property names), with or without the flags.
        ({"estimatedWaitTime": 120, "isEWTRequested": True, "isEWTAvailable": True}, 120.0),
        ({"estimatedWaitTime": 95.5}, 95.5),
        ({"estimatedWaitTime": 120, "isEWTAvailable": False}, None),
        ({"estimatedWaitTime": -1}, None),  # "could not be calculated"
        # The nested object Salesforce's SDK model reads: no isEWTAvailable needed.
        ({"estimatedWaitTime": NESTED}, 120.0),
        ({"estimatedWaitTime": {"estimatedWaitTimeInSeconds": 0, "isEWTRequested": True}}, 0.0),
        ({"estimatedWaitTime": {"estimatedWaitTimeInSeconds": 120, "isEWTRequested": False}}, None),
        ({"estimatedWaitTime": {"estimatedWaitTimeInSeconds": 120}}, None),
        ({"estimatedWaitTime": {"estimatedWaitTimeInSeconds": None, "isEWTRequested": True}}, None),
        ({"estimatedWaitTime": {"estimatedWaitTimeInSeconds": -1, "isEWTRequested": True}}, None),
        ({"estimatedWaitTime": NESTED, "isEWTAvailable": False}, None),
        ({}, None),
        ({"estimatedWaitTime": None}, None),
    ],
)
def test_routing_result_wait_in_either_shape(fields: dict[str, object], wait: float | None) -> None:
    payload = _routing(failureType="None", **fields)
    assert payload.failure_type == "None"
    assert payload.routing_type == "Initial"
    assert payload.estimated_wait_time == wait


def test_routing_failure_with_the_nested_null_wait() -> None:
    payload = _routing(
        failureType="RoutingError",
        failureReason="No agents are available.",
        estimatedWaitTime={"estimatedWaitTimeInSeconds": None, "isEWTRequested": False},
    )
    assert payload.failure_type == "RoutingError"
    assert payload.failure_reason == "No agents are available."
    assert payload.estimated_wait_time is None


MALFORMED_WAITS: list[dict[str, object]] = [
    {"estimatedWaitTime": "120"},
    {"estimatedWaitTime": True},
    {"estimatedWaitTime": [120]},
    {"estimatedWaitTime": {"estimatedWaitTimeInSeconds": "soon", "isEWTRequested": True}},
    {"estimatedWaitTime": {"estimatedWaitTimeInSeconds": 120, "isEWTRequested": "yes"}},
    {"estimatedWaitTime": {"estimatedWaitTimeInSeconds": {"s": 1}, "isEWTRequested": True}},
    {"estimatedWaitTime": 120, "isEWTAvailable": "true"},
]


@pytest.mark.parametrize("fields", MALFORMED_WAITS)
@pytest.mark.parametrize("failure_type", ["RoutingError", "None"])
def test_a_malformed_wait_never_hides_the_routing_outcome(
    fields: dict[str, object], failure_type: str
) -> None:
    payload = _routing(failureType=failure_type, failureReason="closed", **fields)
    assert payload.failure_type == failure_type
    assert payload.failure_reason == "closed"
    assert payload.estimated_wait_time is None


def test_a_malformed_wait_is_logged_once_at_debug(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "_malformed_wait_logged", False)
    with caplog.at_level(logging.DEBUG, logger="handoff.miaw"):
        for fields in MALFORMED_WAITS:
            _routing(failureType="RoutingError", **fields)
    records = [r for r in caplog.records if "wait time ignored" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "$.estimatedWaitTime" in records[0].getMessage()


def test_the_routing_outcome_itself_is_still_strict() -> None:
    with pytest.raises(RemoteProtocolError, match=r"\$\.failureType"):
        _routing(estimatedWaitTime=NESTED)
    with pytest.raises(RemoteProtocolError, match=r"\$\.failureType"):
        _routing(failureType=3, estimatedWaitTime=NESTED)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"conversationEntry": {}}, "$.conversationId"),
        (
            {
                "conversationId": "x",
                "conversationEntry": {"entryType": "Message", "entryPayload": "{}"},
            },
            "$.conversationEntry.identifier",
        ),
        ({"conversationId": 7, "conversationEntry": {}}, "$.conversationId"),
        (
            {
                "conversationId": "x",
                "conversationEntry": {"identifier": "i", "entryType": "Message", "entryPayload": 3},
            },
            "$.conversationEntry.entryPayload",
        ),
        (
            {
                "conversationId": "x",
                "conversationEntry": {
                    "identifier": "i",
                    "entryType": "Message",
                    "entryPayload": "{}",
                    "transcriptedTimestamp": "soon",
                },
            },
            "$.conversationEntry.transcriptedTimestamp",
        ),
    ],
)
def test_errors_name_the_wire_field(data: dict[str, object], named: str) -> None:
    with pytest.raises(RemoteProtocolError, match=named.replace("$", r"\$")):
        wire.parse(data, wire.EventEnvelope, "event")


def test_token_event_id_may_be_a_number_and_token_is_not_in_repr() -> None:
    token = wire.parse(
        {"accessToken": "secret.jwt.value", "lastEventId": 2147867834}, wire.AccessToken, "token"
    )
    assert token.last_event_id == "2147867834"
    assert "secret" not in repr(token)


def test_rich_messages_degrade_to_text() -> None:
    attachments = wire.parse(
        {
            "abstractMessage": {
                "messageType": "StaticContentMessage",
                "staticContent": {
                    "formatType": "Attachments",
                    "text": None,
                    "attachments": [{"name": "invoice.pdf", "url": "https://x/invoice.pdf"}],
                },
            }
        },
        wire.MessagePayload,
        "message",
    )
    assert entry_text(attachments) == "invoice.pdf https://x/invoice.pdf"
    choices = wire.parse(
        {
            "abstractMessage": {
                "messageType": "ChoicesMessage",
                "choices": {
                    "formatType": "Buttons",
                    "text": "Pick one",
                    "optionItems": [
                        {"titleItem": {"title": "Order"}},
                        {"titleItem": {"title": "Bill"}},
                    ],
                },
            }
        },
        wire.MessagePayload,
        "message",
    )
    assert entry_text(choices) == "Pick one\n- Order\n- Bill"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)


ENTRY_KEYS = ["identifier", "entryType", "entryPayload", "sender", "transcriptedTimestamp", "x"]
garbage_envelopes = st.dictionaries(
    st.sampled_from(["conversationId", "conversationEntry", "other"]), json_values, max_size=3
) | st.fixed_dictionaries(
    {
        "conversationId": st.text(),
        "conversationEntry": st.dictionaries(st.sampled_from(ENTRY_KEYS), json_values, max_size=6),
    }
)


@given(garbage_envelopes)
def test_garbage_either_parses_or_raises_remote_protocol_error(data: dict[str, object]) -> None:
    try:
        envelope = wire.parse(data, wire.EventEnvelope, "event")
    except RemoteProtocolError:
        return
    with contextlib.suppress(RemoteProtocolError):
        wire.decode_entry_payload(envelope.conversation_entry, wire.MessagePayload)
