"""The table itself: every row fires by name, and its shape keeps the promised rules."""

from __future__ import annotations

import pytest

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import handle
from handoff_core.errors import LocalProtocolError, RemoteProtocolError
from handoff_core.machine import (
    AGENT_TRIGGERS,
    BOT_OWNS,
    TRANSITIONS,
    TRIGGERS,
    WITH_SESSION,
    State,
    legal_triggers,
    row_label,
)
from handoff_core.serialization import EFFECT_TYPES
from tests.core.builders import conversation_in, row_scenario

ROW_CASES = [
    pytest.param(index, source, id=f"{row_label(index)} <from {source.value}>")
    for index, row in enumerate(TRANSITIONS)
    for source in row["source"]
]


@pytest.mark.parametrize(("index", "source"), ROW_CASES)
def test_every_row_fires(index: int, source: State) -> None:
    policy, conv, event = row_scenario(index, source)
    assert conv.state is source
    step = handle(conv, event, policy)
    assert step.dropped is None
    assert step.row == index, f"expected {row_label(index)}, fired {row_label(step.row or 0)}"
    dest = TRANSITIONS[index]["dest"]
    assert step.conversation.state is (source if dest is None else dest)
    assert step.conversation.outbox == step.effects
    assert step.conversation.step == conv.step + 1
    keys = [effect.key for effect in step.effects]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith(f"{conv.id}/{conv.step + 1}/") for key in keys)
    if dest is not None and dest is not source:
        record = step.conversation.audit[-1]
        assert (record.source, record.dest, record.trigger) == (source, dest, event.TRIGGER)
        assert record.at == event.at


def test_every_trigger_has_a_event_class() -> None:
    assert set(TRIGGERS) == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("state", list(State))
def test_rows_for_each_state_end_unguarded(state: State) -> None:
    """Some row always fires for a legal pair, except where the guard is the legality itself."""
    guarded_by_design = {"availability_checked", "timer_fired"}
    for trigger in legal_triggers(state) - guarded_by_design:
        rows = [r for r in TRANSITIONS if r["trigger"] == trigger and state in r["source"]]
        last = rows[-1]
        assert not last.get("conditions"), (trigger, state)
        assert not last.get("unless"), (trigger, state)


def test_no_dead_ends() -> None:
    """From every state a user message leads (at most via one more) back to the bot."""
    for state in State:
        sources_reaching_bot = {
            s for r in TRANSITIONS if r["trigger"] == "user_message" for s in r["source"]
        }
        assert state in sources_reaching_bot
    for state in BOT_OWNS:
        assert "bot_escalated" in legal_triggers(state)  # can escalate again
        assert "user_message" in legal_triggers(state)


def test_leaving_a_session_closes_it() -> None:
    """Every row out of a state with an agent session to one without it has a closing action."""
    closing = {
        "end_by_user",
        "end_because_user_left",
        "close_by_agent",
        "close_lost_session",
        "fail_ended_before_join",
        "fail_rejected",
        "fail_session_lost",
        "fail_queue_timeout",
        "end_idle_chat",
        "fail_unavailable",
    }
    for row in TRANSITIONS:
        dest = row["dest"]
        if dest is None or dest in WITH_SESSION:
            continue
        if any(source in WITH_SESSION for source in row["source"]):
            assert set(row.get("after", [])) & closing, row_label(TRANSITIONS.index(row))


ILLEGAL = [
    (state, trigger)
    for state in State
    for trigger in TRIGGERS
    if trigger not in legal_triggers(state)
    and trigger not in AGENT_TRIGGERS | {"timer_fired"}  # those are dropped as stale outside
]


@pytest.mark.parametrize(("state", "trigger"), ILLEGAL, ids=lambda x: getattr(x, "value", x))
def test_illegal_local_pairs_raise_and_change_nothing(state: State, trigger: str) -> None:
    from handoff_core.policy import Policy

    policy = Policy()
    conv = conversation_in(state, policy)
    event = {
        "bot_transfer_requested": ev.BotTransferRequested(at=1, target_bot="b"),
        "bot_transfer_failed": ev.BotTransferFailed(at=1, target_bot="b"),
        "availability_checked": ev.AvailabilityChecked(at=1, available=True),
    }[trigger]
    before = conv
    with pytest.raises(LocalProtocolError, match="can't handle"):
        handle(conv, event, policy)
    assert conv == before


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.ESCALATING, ev.AgentTransferred(at=1, session="c#1")),
        (State.QUEUED, ev.AgentTransferred(at=1, session="c#1")),
        (State.AGENT_CONNECTED, ev.AgentSessionOpened(at=1, session="c#1", backend="x")),
        (
            State.AGENT_CONNECTED,
            ev.TransferRejected(at=1, session="c#1", reason=ev.RejectReason.ERROR),
        ),
    ],
)
def test_illegal_backend_events_are_the_peers_fault(state: State, event: ev.Event) -> None:
    from handoff_core.policy import Policy

    conv = conversation_in(state, Policy())
    with pytest.raises(RemoteProtocolError):
        handle(conv, event)


def test_availability_result_without_a_check_is_illegal() -> None:
    from handoff_core.policy import Policy

    conv = conversation_in(State.ESCALATING, Policy())  # no check configured, none pending
    with pytest.raises(LocalProtocolError):
        handle(conv, ev.AvailabilityChecked(at=2, available=True))


def test_effect_classes_are_all_produced_somewhere() -> None:
    """Every effect class appears in at least one row scenario (no dead effect types)."""
    produced: set[type[fx.Effect]] = set()
    for case in ROW_CASES:
        index, source = case.values
        policy, conv, event = row_scenario(index, source)  # type: ignore[arg-type]
        produced |= {type(e) for e in handle(conv, event, policy).effects}
    from handoff_core.conversation import Conversation
    from handoff_core.policy import Policy

    checking = handle(
        Conversation.new("c"), ev.UserMessage(at=1, text="agent"), Policy(check_availability=True)
    )
    produced |= {type(e) for e in checking.effects}
    expected = set(EFFECT_TYPES)
    assert expected <= produced, expected - produced
