"""``handoff demo`` end to end: each bot with each backend on loopback, the real runtime."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import pytest

from handoff_adapters import demo
from handoff_adapters.cli import main
from handoff_adapters.terminal import TerminalChannel

#: (state at the start of the line, text in the line), in this order; other lines may come between.
Story = list[tuple[str, str]]

AGENT_CHAT: Story = [
    ("queued", "system │ You are number 2 in the queue."),
    ("agent_connected", "system │ Ada has joined the chat."),
    ("agent_connected", "Ada │ Hi, I'm Ada from customer care. How can I help?"),
]
AGENT_CHAT_END: Story = [
    ("agent_connected", "you │ My parcel has not arrived yet."),
    ("agent_connected", "Ada │ (Ada is typing…)"),
    ("agent_connected", "Ada │ Sorry about that! Let me check your order."),
    ("agent_connected", "Ada │ It left our warehouse this morning; you will have it tomorrow."),
    ("agent_connected", "you │ Great, thank you!"),
    ("agent_connected", "Ada │ You're welcome. Have a good day!"),
    ("agent_connected", "you │ endagentchat"),
    ("user_ended", "system │ You have ended the chat with the agent."),
]
NO_AGENT: Story = [
    ("escalating", "system │ Please wait while we connect you to an agent."),
    ("transfer_failed", "system │ Sorry, no agent is available right now."),
]

STORIES: dict[str, Story] = {
    "einstein": [
        ("bot", "you │ hello"),
        ("bot", "bot │ 1. Order status"),
        ("bot", "you │ 2"),  # "Billing question": a bot-to-bot transfer
        ("bot", "system │ One moment, I am passing you to another assistant."),
        ("bot", "bot │ Hi, I'm Penny from billing. I see order A-1001 (USD 42.50)."),
        (
            "bot",
            "info │ bot-to-bot transfer: Penny's session starts with Astro's variables: "
            "OrderNumber='A-1001', OrderTotal='USD 42.50', VIP=True",
        ),
        ("bot", "you │ transfer me to a person"),
        ("bot", "bot │ One moment, I'm transferring you to an agent."),
        ("escalating", "system │ Please wait while we connect you to an agent."),
        *AGENT_CHAT,
        ("agent_connected", "info │ Einstein (Penny) is told: transferSucceeded"),
        *AGENT_CHAT_END,
        ("user_ended", "you │ hello"),  # back with Penny: a new session, same variables
        ("bot", "bot │ Hi, I'm Penny from billing. I see order A-1001 (USD 42.50)."),
        ("bot", "you │ hello"),
        ("bot", "you │ 3"),  # "Talk to a person"
        *NO_AGENT,
        (
            "transfer_failed",
            "bot │ Sorry, nobody could take the chat (NoAgentAvailable). I'm still here",
        ),
        ("transfer_failed", "info │ Einstein (Astro) is told: transferFailed (NoAgentAvailable)"),
        ("transfer_failed", "you │ 1"),
        ("bot", "bot │ Your order A-1001 ships today."),
    ],
    "kore": [
        ("bot", "you │ hi"),
        ("bot", "bot │ Hello! I am the Kore demo bot."),
        ("bot", "info │ (Kore BotKit has no bot-to-bot transfer"),
        ("bot", "you │ transfer me"),
        ("bot", "bot │ Let me connect you to an agent."),
        ("escalating", "system │ Please wait while we connect you to an agent."),
        *AGENT_CHAT,
        ("agent_connected", "info │ the Kore platform is called: startAgentSession"),
        *AGENT_CHAT_END,
        ("user_ended", "you │ hi"),
        ("bot", "bot │ Hello! I am the Kore demo bot."),
        ("bot", "you │ transfer me"),
        *NO_AGENT,
        ("transfer_failed", "info │ the Kore platform is called: clearAgentSession"),
        ("transfer_failed", "you │ hi"),
        ("bot", "bot │ Hello! I am the Kore demo bot."),
    ],
    "rule": [
        ("bot", "you │ hi"),
        ("bot", "bot │ Hello! I can tell you about opening hours"),
        ("bot", "you │ what are your opening hours?"),
        ("bot", "bot │ We are open Monday to Friday"),
        ("bot", "you │ agent"),
        ("escalating", "system │ Please wait while we connect you to an agent."),
        *AGENT_CHAT,
        ("agent_connected", "info │ the bot is told: Succeeded"),
        *AGENT_CHAT_END,
        ("user_ended", "you │ thanks"),
        ("bot", "bot │ You're welcome. Have a nice day!"),
        ("bot", "you │ agent"),
        *NO_AGENT,
        ("transfer_failed", "bot │ I could not reach a person just now"),
        ("transfer_failed", "info │ the bot is told: NoAgentAvailable ("),
        ("transfer_failed", "you │ how long does shipping take?"),
        ("bot", "bot │ Orders ship within 2 working days"),
    ],
}


def assert_story(lines: list[str], story: Story) -> None:
    position = -1
    for state, text in story:
        position = next(
            (
                i
                for i in range(position + 1, len(lines))
                if lines[i].startswith(state + " ") and text in lines[i]
            ),
            -1,
        )
        assert position >= 0, f"missing, or out of order: {state} … {text}\n" + "\n".join(lines)


def test_every_bot_has_a_story() -> None:
    assert set(STORIES) == set(demo.BOTS)
    assert set(demo.BACKENDS) == {"miaw", "liveagent"}


@pytest.mark.parametrize("backend", sorted(demo.BACKENDS))
@pytest.mark.parametrize("bot", sorted(demo.BOTS))
def test_demo_tells_the_whole_story(
    bot: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert main(["demo", "--pace", "0", "--bot", bot, "--backend", backend]) == 0
    assert time.monotonic() - started < 10
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("handoff demo:")
    assert f"the {backend} simulator" in lines[0]
    assert_story(lines, STORIES[bot])
    assert captured.err == ""


def test_the_default_is_einstein_and_miaw_and_it_runs_on_trio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--pace", "0", "--async-backend", "trio"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Einstein Bots simulator" in lines[0]
    assert "the miaw simulator" in lines[0]
    assert_story(lines, STORIES["einstein"])


def test_demo_speaks_the_chosen_language_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pace", "0", "--lang", "de", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all("kind" in r and "at" in r for r in records)
    joined = [r for r in records if r.get("message_key") == "agentJoinedMessage"]
    assert joined[0]["state"] == "agent_connected"
    assert "Ada" in joined[0]["text"]
    assert joined[0]["text"] != "Ada has joined the chat."  # German, not the English default
    queued = [r for r in records if r.get("message_key") == "estimatedWaitMessage"]
    assert queued[0]["queue_position"] == 2
    infos = [r for r in records if r["kind"] == "info"]
    assert "VIP=True" in infos[0]["text"]
    assert infos[0]["state"] == "bot"
    assert infos[-1]["state"] == "transfer_failed"
    assert infos[-1]["text"].endswith("transferFailed (NoAgentAvailable)")


def test_a_step_that_never_happens_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @asynccontextmanager
    async def deaf_bot(
        options: demo.DemoOptions, world: demo.DemoWorld, channel: TerminalChannel
    ) -> AsyncIterator[demo.DemoBot]:
        async with demo.BOTS["rule"](options, world, channel) as bot:
            yield attrs.evolve(bot, opening=[demo.Turn(text="hi", reply="never said")])

    monkeypatch.setattr(demo, "STEP_LIMIT", 0.3)
    monkeypatch.setitem(demo.BOTS, "einstein", deaf_bot)
    assert main(["demo", "--pace", "0"]) == 1
    assert capsys.readouterr().err == "handoff demo: timed out waiting until the bot answers 'hi'\n"
