"""A broken peer: every bad event is skipped, logged and counted; the stream and the other
conversations go on."""

from __future__ import annotations

import json
import logging

import anyio
import pytest

from tests.adapters.miaw.helpers import miaw_stack

pytestmark = pytest.mark.anyio


def _envelope(conversation_id: str, **entry: object) -> str:
    base: dict[str, object] = {
        "identifier": "0c5b7c1e-96b3-4b1b-9d59-2c6c1c0f0f01",
        "entryType": "Message",
        "sender": {"role": "Agent"},
        "transcriptedTimestamp": 1,
        "entryPayload": json.dumps(
            {
                "abstractMessage": {
                    "messageType": "StaticContentMessage",
                    "staticContent": {"formatType": "Text", "text": "sneaky"},
                }
            }
        ),
    }
    base.update(entry)
    return json.dumps({"conversationId": conversation_id, "conversationEntry": base})


@pytest.mark.parametrize(
    ("why", "inject"),
    [
        ("malformed", lambda sim, cid: sim.inject(cid, "CONVERSATION_MESSAGE", "{not json")),
        ("malformed", lambda sim, cid: sim.inject(cid, "CONVERSATION_MESSAGE", "[1, 2, 3]")),
        (
            "malformed",
            lambda sim, cid: sim.inject_frame(
                cid, b'id: 5\nevent: CONVERSATION_MESSAGE\ndata: {"conversationId": 3}\n\n'
            ),
        ),
        (
            "malformed",
            lambda sim, cid: sim.inject(
                cid, "CONVERSATION_MESSAGE", _envelope(cid, identifier=None)
            ),
        ),
        (
            "bad_payload",
            lambda sim, cid: sim.inject(
                cid, "CONVERSATION_MESSAGE", _envelope(cid, entryPayload="{{{ not json")
            ),
        ),
        (
            "bad_payload",
            lambda sim, cid: sim.inject(
                cid, "CONVERSATION_MESSAGE", _envelope(cid, entryPayload=json.dumps({"x": 1}))
            ),
        ),
        (
            "unknown_conversation",
            lambda sim, cid: sim.inject(
                cid, "CONVERSATION_MESSAGE", _envelope("6f1d2a3b-0000-4000-8000-000000000000")
            ),
        ),
        (
            "oversized",
            lambda sim, cid: sim.inject(
                cid, "CONVERSATION_MESSAGE", _envelope(cid, padding="x" * 20_000)
            ),
        ),
    ],
)
async def test_bad_event_is_skipped_and_the_rest_goes_on(
    why: str, inject: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handoff.miaw")
    async with miaw_stack(max_event_bytes=8_000) as stack:
        first = await stack.escalate("c1")
        second = await stack.escalate("c2")
        await stack.wait_text("Jane Agent has joined the chat.", "c1")
        await stack.wait_text("Jane Agent has joined the chat.", "c2")
        inject(stack.sim, first.id)  # type: ignore[operator]
        stack.sim.say(first.id, "after the bad event")
        stack.sim.say(second.id, "meanwhile elsewhere")
        await stack.wait_text("after the bad event", "c1")
        await stack.wait_text("meanwhile elsewhere", "c2")
    assert stack.backend.stats[f"skipped:{why}"] == 1
    assert "sneaky" not in stack.channel.texts("c1")
    assert any(f"skipped a MIAW event ({why})" in r.getMessage() for r in caplog.records)


async def test_a_missing_field_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="handoff.miaw")
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.inject(miaw.id, "CONVERSATION_MESSAGE", _envelope(miaw.id, identifier=None))
        stack.sim.say(miaw.id, "fine")
        await stack.wait_text("fine")
    assert any("$.conversationEntry.identifier" in r.getMessage() for r in caplog.records)


async def test_unknown_event_types_and_pings_are_ignored() -> None:
    async with miaw_stack() as stack:
        miaw = await stack.escalate()
        await stack.wait_text("Jane Agent has joined the chat.")
        stack.sim.inject_frame(miaw.id, b"event: ping\ndata: 0\n\n")
        stack.sim.inject(
            miaw.id,
            "CONVERSATION_SOMETHING_NEW",
            _envelope(
                miaw.id, entryType="SomethingNew", identifier="0c5b7c1e-96b3-4b1b-9d59-2c6c1c0f0f09"
            ),
        )
        stack.sim.inject_frame(miaw.id, b": a comment line\nretry: 10\n\n")
        stack.sim.say(miaw.id, "still fine")
        with anyio.fail_after(5):
            await stack.wait_text("still fine")
    assert stack.backend.stats["ignored:SomethingNew"] == 1
    assert not any(k.startswith("skipped:") for k in stack.backend.stats)
