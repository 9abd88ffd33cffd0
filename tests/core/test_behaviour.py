"""Specific behaviours of the core, its policy, messages and serialization."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation, handle
from handoff_core.errors import LocalProtocolError
from handoff_core.machine import State
from handoff_core.messages import MESSAGE_KEYS, MessageCatalog, resolve_language
from handoff_core.policy import Policy, normalize_utterance
from handoff_core.serialization import (
    structure_conversation,
    structure_event,
    unstructure_conversation,
    unstructure_event,
)
from tests.core.builders import SESSION, T0, conversation_in, drive


def deliveries(step_effects: tuple[fx.Effect, ...]) -> list[str]:
    return [e.text for e in step_effects if isinstance(e, fx.DeliverToUser)]


# -- escalation triggers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrases", "mode", "said", "escalates"),
    [
        (None, "exact", "Agent!", True),
        (None, "exact", "  talk to a HUMAN  ", True),
        (None, "exact", "my travel agent is late", False),
        (["chat with associate"], "exact", "Chat with associate.", True),
        (["chat with associate"], "exact", "agent", False),
        (["agent"], "contains", "can I get an agent please", True),
        (["agent"], "contains", "agents", False),
    ],
)
def test_escalation_phrases(
    phrases: list[str] | None, mode: str, said: str, escalates: bool
) -> None:
    options: dict[str, Any] = {"phrase_match": mode}
    if phrases is not None:
        options["escalation_phrases"] = phrases
    policy = Policy(**options)
    step = handle(Conversation.new("c"), ev.UserMessage(at=1, text=said), policy)
    assert (step.conversation.state is State.ESCALATING) is escalates
    if not escalates:
        assert step.effects[0] == fx.ForwardToBot(key="c/1/0", text=said)


def test_consecutive_bot_errors_escalate_and_a_good_reply_resets_the_count() -> None:
    policy = Policy(max_bot_errors=2)
    conv = drive(Conversation.new("c"), ev.BotFailed(at=1), policy=policy)
    conv = drive(conv, ev.BotReplied(at=2, text="ok"), policy=policy)
    assert conv.bot_errors == 0
    conv = drive(conv, ev.BotFailed(at=3), policy=policy)
    assert conv.state is State.BOT
    step = handle(conv, ev.BotFailed(at=4), policy)
    assert step.conversation.state is State.ESCALATING
    assert step.conversation.escalation is not None
    assert step.conversation.escalation.reason is ev.EscalationReason.ERROR


def test_triggers_can_be_disabled() -> None:
    policy = Policy(max_bot_errors=None, max_not_understood=None)
    conv = Conversation.new("c")
    for n in range(10):
        conv = drive(
            conv,
            ev.BotFailed(at=n),
            ev.BotReplied(at=n, text="?", not_understood=True),
            policy=policy,
        )
    assert conv.state is State.BOT


def test_end_keyword_is_announced_and_can_come_from_the_bot() -> None:
    policy = Policy(end_keyword="stopchat")
    conv = drive(
        Conversation.new("c"),
        ev.BotEscalated(at=1, end_keyword="#quit"),
        policy=policy,
    )
    session = conv.agent_session
    assert session is not None
    step = handle(conv, ev.AgentJoined(at=2, session=session, agent_name="Ada"), policy)
    assert any('"#quit"' in text for text in deliveries(step.effects))
    conv = attrs.evolve(step.conversation, outbox=())
    assert handle(conv, ev.UserMessage(at=3, text="stopchat"), policy).conversation.state is (
        State.AGENT_CONNECTED
    )
    assert handle(conv, ev.UserMessage(at=3, text="#QUIT"), policy).conversation.state is (
        State.USER_ENDED
    )


def test_queue_messages_only_when_something_changed() -> None:
    policy = Policy()
    conv = conversation_in(State.QUEUED, policy)  # position 2 announced already
    same = handle(conv, ev.QueueUpdated(at=2, session=SESSION, queue_position=2), policy)
    assert deliveries(same.effects) == []
    wait = handle(
        conv, ev.QueueUpdated(at=2, session=SESSION, queue_position=1, estimated_wait=90), policy
    )
    assert deliveries(wait.effects) == [
        "You are number 1 in the queue. The estimated wait is about 2 min."
    ]


def test_duplicates_and_stale_events_are_dropped() -> None:
    policy = Policy()
    conv = conversation_in(State.AGENT_CONNECTED, policy)
    message = ev.AgentMessage(at=2, session=SESSION, text="hi", peer_id="7")
    first = handle(conv, message, policy)
    again = handle(attrs.evolve(first.conversation, outbox=()), message, policy)
    assert again.dropped == "duplicate"
    stale = handle(conv, attrs.evolve(message, session="c#0"), policy)
    assert stale.dropped == "stale session"
    timer = handle(
        conv, ev.TimerFired(at=2, timer=ev.TimerKind.QUEUE_TIMEOUT, timer_id="x"), policy
    )
    assert timer.dropped == "stale timer"


def test_cursors_are_stored_with_the_conversation() -> None:
    policy = Policy()
    conv = conversation_in(State.QUEUED, policy)
    step = handle(conv, ev.AgentCursorAdvanced(at=2, session=SESSION, cursor={"ack": 9}), policy)
    assert step.conversation.agent_cursor == {"ack": 9}
    step = handle(conv, ev.BotReplied(at=2, text="hi", cursor={"session": "s1", "seq": 4}), policy)
    assert step.conversation.bot_cursor == {"session": "s1", "seq": 4}
    step = handle(conv, ev.UserMessage(at=2, text="hi", cursor={"reply": "https://x/1"}), policy)
    assert step.conversation.channel_cursor == {"reply": "https://x/1"}


def test_an_outbox_must_be_finished_first() -> None:
    step = handle(Conversation.new("c"), ev.UserMessage(at=1, text="hi"))
    with pytest.raises(LocalProtocolError, match="not yet marked done"):
        handle(step.conversation, ev.UserMessage(at=2, text="again"))


def test_not_an_event() -> None:
    with pytest.raises(LocalProtocolError, match="not a handoff event"):
        handle(Conversation.new("c"), "hello")  # type: ignore[arg-type]


def test_owner() -> None:
    policy = Policy()
    assert conversation_in(State.BOT, policy).owner == "bot"
    assert conversation_in(State.QUEUED, policy).owner == "pending"
    assert conversation_in(State.AGENT_CONNECTED, policy).owner == "agent"


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ev.UserMessage(at=float("nan"), text="x"), "UserMessage.at"),
        (lambda: ev.UserMessage(at=True, text="x"), "UserMessage.at"),
        (lambda: ev.UserMessage(at=1, text=3), "UserMessage.text"),
        (lambda: ev.UserMessage(at=1, text="x", message_id=4), "UserMessage.message_id"),
        (lambda: ev.AgentJoined(at=1, session=""), "AgentJoined.session"),
        (lambda: ev.AgentAccepted(at=1, session="s", queue_position=-1), "queue_position"),
        (lambda: ev.AgentAccepted(at=1, session="s", estimated_wait=-5), "estimated_wait"),
        (lambda: ev.BotEscalated(at=1, variables={"a": [1]}), "BotEscalated.variables['a']"),
        (lambda: ev.BotEscalated(at=1, variables={1: "a"}), "keys must be str"),
        (lambda: ev.BotEscalated(at=1, prechat="x"), "BotEscalated.prechat"),
        (lambda: ev.BotEscalated(at=1, targets="queue"), "targets"),
        (lambda: ev.BotEscalated(at=1, targets=["queue"]), "EscalationTarget"),
        (lambda: ev.EscalationTarget(kind="", value="q"), "EscalationTarget.kind"),
        (lambda: ev.BotReplied(at=1, text="x", cursor=[1]), "BotReplied.cursor"),
        (lambda: Conversation.new(""), "conversation id"),
        (lambda: Policy(end_keyword=" "), "Policy.end_keyword"),
        (lambda: Policy(escalation_phrases="agent"), "Policy.escalation_phrases"),
        (lambda: Policy(escalation_phrases=["ok", ""]), "Policy.escalation_phrases"),
        (lambda: Policy(phrase_match="regex"), "Policy.phrase_match"),
        (lambda: Policy(max_bot_errors=0), "Policy.max_bot_errors"),
        (lambda: Policy(queue_timeout=-1), "Policy.queue_timeout"),
        (lambda: Policy(messages=3), "Policy.messages"),
        (lambda: MessageCatalog({"en": {"nope": "x"}}), "unknown message key"),
        (lambda: MessageCatalog({"en": {"agentJoinedMessage": 3}}), "expected str"),
        (lambda: MessageCatalog({"de": {"agentJoinedMessage": "{name} ist da"}}), "{name}"[1:-1]),
        (lambda: MessageCatalog({"de": {"agentJoinedMessage": "{agent"}}), "malformed"),
    ],
)
def test_bad_input_names_the_field(build: Any, field: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert field in str(info.value)


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        (None, "en"),
        ("", "en"),
        ("fr-FR", "fr"),
        ("zh-TW", "zh_tw"),
        ("zh-Hant", "zh_tw"),
        ("zh", "zh_cn"),
        ("pt_BR", "pt"),
        ("sv", "en"),
        ("KO", "ko"),
    ],
)
def test_language_resolution(tag: str | None, code: str) -> None:
    assert resolve_language(tag) == code


def test_overrides_per_language_and_for_all() -> None:
    catalog = MessageCatalog(
        {
            "*": {"agentJoinedMessage": "[{agent}]"},
            "fr": {"lookingForAgentMessage": "Un instant…"},
            "sv": {"lookingForAgentMessage": "Ett ögonblick"},
        }
    )
    assert catalog.render("agentJoinedMessage", "ja", {"agent": "Ada"}) == "[Ada]"
    assert catalog.render("lookingForAgentMessage", "fr-CA") == "Un instant…"
    assert catalog.render("lookingForAgentMessage", "sv") == "Ett ögonblick"
    # A key the override language lacks falls back to English.
    assert catalog.render("idleTimeoutMessage", "sv").startswith("The chat with the agent")
    assert "sv" in catalog.languages
    with pytest.raises(LocalProtocolError):
        catalog.render("noSuchKey", "en")


def test_every_language_renders_every_key() -> None:
    catalog = MessageCatalog()
    params = {"position": "3", "minutes": "5", "agent": "Ada", "keyword": "endagentchat"}
    for language in catalog.languages:
        for key in MESSAGE_KEYS:
            assert catalog.render(key, language, params)


def test_policy_messages_reach_the_user() -> None:
    policy = Policy(messages={"es": {"lookingForAgentMessage": "¡Un momento!"}})
    conv = Conversation.new("c", language="es-MX")
    step = handle(conv, ev.UserMessage(at=1, text="agent"), policy)
    assert deliveries(step.effects) == ["¡Un momento!"]


def test_normalize() -> None:
    assert normalize_utterance("  Talk—to   a HUMAN!! ") == "talk to a human"


# -- serialization -----------------------------------------------------------------------------


def test_every_event_round_trips() -> None:
    samples = [
        ev.UserMessage(at=1, text="hi", message_id="m"),
        ev.BotEscalated(
            at=1,
            targets=(ev.EscalationTarget(kind="queue", value="q"),),
            variables={"n": 1, "ok": True, "x": None},
            cursor={"s": "1"},
        ),
        ev.TransferRejected(at=1, session="s", reason=ev.RejectReason.UNAVAILABLE),
        ev.TimerFired(at=1, timer=ev.TimerKind.IDLE_TIMEOUT, timer_id="t"),
    ]
    for event in samples:
        data = unstructure_event(event)
        assert data["type"] == type(event).__name__
        assert structure_event(data) == event


def test_malformed_stored_data_is_a_clear_error() -> None:
    conv = conversation_in(State.AGENT_CONNECTED, Policy())
    data = unstructure_conversation(conv)
    broken = {**data, "state": "sleeping"}
    with pytest.raises(LocalProtocolError, match="malformed"):
        structure_conversation(broken)
    with pytest.raises(LocalProtocolError, match="schema"):
        structure_conversation({**data, "schema": 99})
    with pytest.raises(LocalProtocolError, match="malformed event"):
        structure_event({"type": "UserMessage", "at": 1})
    with pytest.raises(LocalProtocolError, match="malformed"):
        structure_conversation({**data, "prechat": ["not", "a", "mapping"]})


def test_round_trip_keeps_an_outbox() -> None:
    conv = conversation_in(State.QUEUED, Policy())
    step = handle(conv, ev.AgentJoined(at=T0, session=SESSION, agent_name="Ada"))
    again = structure_conversation(unstructure_conversation(step.conversation))
    assert again == step.conversation
    assert again.outbox == step.effects


def test_closing_a_session_carries_its_cursor_and_reprs_hide_cursors() -> None:
    policy = Policy()
    conv = conversation_in(State.AGENT_CONNECTED, policy)
    conv = drive(
        conv,
        ev.AgentCursorAdvanced(at=2, session=SESSION, cursor={"key": "SECRET-KEY", "ack": 4}),
        policy=policy,
    )
    step = handle(conv, ev.UserMessage(at=3, text="endagentchat"), policy)
    close = next(e for e in step.effects if isinstance(e, fx.CloseAgentSession))
    assert close.cursor == {"key": "SECRET-KEY", "ack": 4}
    assert step.conversation.agent_cursor is None
    assert "SECRET-KEY" not in repr(close)
    assert "SECRET-KEY" not in repr(conv)
    assert "SECRET-KEY" not in repr(
        ev.AgentMessage(at=1, session="s", text="x", cursor={"k": "SECRET-KEY"})
    )
    assert "<cursor ack,key>" in repr(conv)


def test_a_failed_bot_transfer_returns_to_the_source_bot() -> None:
    conv = drive(
        Conversation.new("c", bot="sales"),
        ev.BotTransferRequested(at=1, target_bot="billing", variables={"plan": "pro"}),
    )
    assert conv.bot == "billing"
    step = handle(conv, ev.BotTransferFailed(at=2, target_bot="billing", source_bot="sales"))
    assert step.conversation.bot == "sales"
    assert step.conversation.variables == {"plan": "pro"}
    assert deliveries(step.effects) == [
        "Sorry, something went wrong on our side. Please try again."
    ]
    # A late failure for a transfer that is no longer current changes no bot.
    later = handle(
        attrs.evolve(step.conversation, outbox=(), bot="support"),
        ev.BotTransferFailed(at=3, target_bot="billing", source_bot="sales"),
    )
    assert later.conversation.bot == "support"


def test_a_retried_user_message_is_applied_once() -> None:
    conv = conversation_in(State.AGENT_CONNECTED, Policy())
    message = ev.UserMessage(at=2, text="hello?", message_id="req-1")
    first = handle(conv, message)
    assert [type(e) for e in first.effects] == [fx.ForwardToAgent]
    again = handle(attrs.evolve(first.conversation, outbox=()), message)
    assert again.dropped == "duplicate"
    other = handle(
        attrs.evolve(first.conversation, outbox=()), attrs.evolve(message, message_id="req-2")
    )
    assert other.dropped is None
