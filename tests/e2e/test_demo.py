"""``handoff demo`` runs end to end (simulator, real adapter over HTTP, runtime, rule bot)."""

from __future__ import annotations

import json
import time

import pytest

from handoff_adapters.cli import main


def test_demo_tells_the_whole_story(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert main(["demo", "--pace", "0"]) == 0
    assert time.monotonic() - started < 10
    lines = capsys.readouterr().out.splitlines()
    story = [
        ("bot", "you │ agent"),
        ("escalating", "Please wait while we connect you to an agent."),
        ("queued", "You are number 2 in the queue."),
        ("agent_connected", "Ada has joined the chat."),
        ("agent_connected", "(Ada is typing…)"),
        ("agent_connected", "Ada │ Sorry about that! Let me check your order."),
        ("agent_connected", "you │ endagentchat"),
        ("user_ended", "You have ended the chat with the agent."),
        ("escalating", "Please wait while we connect you to an agent."),
        ("transfer_failed", "Sorry, no agent is available right now."),
        ("transfer_failed", "bot │ I could not reach a person just now"),
        ("bot", "bot │ Orders ship within 2 working days"),
    ]
    position = 0
    for state, text in story:  # in this order, each with the state at the start of its line
        position = next(
            (
                i
                for i in range(position, len(lines))
                if lines[i].startswith(state + " ") and text in lines[i]
            ),
            -1,
        )
        assert position >= 0, f"missing, or out of order: {state} … {text}"


def test_demo_speaks_the_chosen_language_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pace", "0", "--lang", "de", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    joined = [r for r in records if r.get("message_key") == "agentJoinedMessage"]
    assert joined[0]["state"] == "agent_connected"
    assert "Ada" in joined[0]["text"]
    assert joined[0]["text"] != "Ada has joined the chat."  # German, not the English default
    queued = [r for r in records if r.get("message_key") == "estimatedWaitMessage"]
    assert queued[0]["queue_position"] == 2
