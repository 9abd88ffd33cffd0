"""Hypothesis: every (state x event) pair, and random event sequences, keep the core's promises."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation, handle
from handoff_core.errors import LocalProtocolError, RemoteProtocolError
from handoff_core.machine import AGENT_TRIGGERS, BOT_OWNS, WAITING, WITH_SESSION, State
from handoff_core.policy import Policy
from handoff_core.serialization import structure_conversation, unstructure_conversation
from tests.core.builders import conversation_in

POLICIES = st.builds(
    Policy,
    check_availability=st.booleans(),
    idle_timeout=st.sampled_from([None, 60.0]),
    queue_timeout=st.sampled_from([None, 300.0]),
    max_bot_errors=st.sampled_from([None, 1, 3]),
    max_not_understood=st.sampled_from([None, 1, 3]),
)
TEXTS = st.sampled_from(["hello", "agent", "endagentchat", "Talk to a human!", "", "ok 👍"])
TIMES = st.floats(min_value=1_000, max_value=2_000, allow_nan=False)


def events_for(conv: Conversation) -> st.SearchStrategy[ev.Event]:
    sessions = st.sampled_from([s for s in (conv.agent_session, "other#1") if s])
    timer_ids = st.sampled_from([t.timer_id for t in conv.timers] + ["bogus"])
    agent: dict[str, Any] = {
        "at": TIMES,
        "session": sessions,
        "peer_id": st.one_of(st.none(), st.sampled_from(["1", "2", "9"])),
    }
    return st.one_of(
        st.builds(ev.UserMessage, at=TIMES, text=TEXTS),
        st.builds(ev.UserTyping, at=TIMES, typing=st.booleans()),
        st.builds(ev.UserLeft, at=TIMES),
        st.builds(ev.BotReplied, at=TIMES, text=TEXTS, not_understood=st.booleans()),
        st.builds(ev.BotFailed, at=TIMES),
        st.builds(ev.BotEscalated, at=TIMES, reason=st.sampled_from(ev.EscalationReason)),
        st.builds(ev.BotTransferRequested, at=TIMES, target_bot=st.just("other-bot")),
        st.builds(ev.AvailabilityChecked, at=TIMES, available=st.booleans()),
        st.builds(ev.AgentSessionOpened, backend=st.just("b"), **agent),
        st.builds(ev.AgentCursorAdvanced, cursor=st.just({"ack": 3}), **agent),
        st.builds(ev.AgentAccepted, queue_position=st.sampled_from([None, 0, 3]), **agent),
        st.builds(
            ev.QueueUpdated,
            queue_position=st.sampled_from([None, 1, 2]),
            estimated_wait=st.sampled_from([None, 30.0, 600.0]),
            **agent,
        ),
        st.builds(ev.AgentJoined, agent_name=st.sampled_from(["", "Ada"]), **agent),
        st.builds(ev.AgentMessage, text=TEXTS, **agent),
        st.builds(ev.AgentTyping, typing=st.booleans(), **agent),
        st.builds(ev.AgentTransferred, agent_name=st.sampled_from(["", "Bo"]), **agent),
        st.builds(ev.AgentEnded, **agent),
        st.builds(ev.TransferRejected, reason=st.sampled_from(ev.RejectReason), **agent),
        st.builds(ev.BackendSessionLost, **agent),
        st.builds(ev.TimerFired, at=TIMES, timer=st.sampled_from(ev.TimerKind), timer_id=timer_ids),
    )


def check_record(conv: Conversation) -> None:
    """What must hold for every conversation the core returns."""
    assert (conv.agent_session is not None) == (conv.state in WITH_SESSION)
    if conv.state not in WAITING:
        assert conv.pending == ()
    if conv.state not in WITH_SESSION:
        assert conv.timers == ()
    if conv.state in BOT_OWNS and conv.escalation is not None:
        assert conv.escalation.outcome_reported
    if conv.state is State.AGENT_CONNECTED:
        assert conv.escalation is not None
        assert conv.escalation.outcome_reported
    assert structure_conversation(unstructure_conversation(conv)) == conv


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(state=st.sampled_from(State), policy=POLICIES, data=st.data())
def test_any_state_any_event(state: State, policy: Policy, data: st.DataObject) -> None:
    conv = conversation_in(state, policy)
    snapshot = unstructure_conversation(conv)
    event = data.draw(events_for(conv))
    try:
        step = handle(conv, event, policy)
    except (LocalProtocolError, RemoteProtocolError) as error:
        assert unstructure_conversation(conv) == snapshot  # nothing mutated
        if isinstance(error, RemoteProtocolError):
            assert event.TRIGGER in AGENT_TRIGGERS
        return
    if step.dropped:
        assert step.conversation is conv
        assert step.effects == ()
        return
    new = step.conversation
    assert new.outbox == step.effects
    assert len({e.key for e in step.effects}) == len(step.effects)
    if new.state is not conv.state:
        assert new.audit[-1].source is conv.state
        assert new.audit[-1].dest is new.state
    check_record(new)
    assert unstructure_conversation(conv) == snapshot


class ConversationSequences(RuleBasedStateMachine):
    """Random conversations: nothing the user says is lost, outcomes are reported exactly once,
    and there is always a way back to the bot."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy(check_availability=False, idle_timeout=60.0, max_not_understood=2)
        self.conv = Conversation.new("c")
        self.now = 1_000.0
        self.said: list[str] = []
        self.to_bot: Counter[str] = Counter()
        self.to_agent: Counter[str] = Counter()
        self.reports: Counter[int] = Counter()
        self.counter = 0

    def feed(self, event: ev.Event) -> None:
        try:
            step = handle(self.conv, event, self.policy)
        except (LocalProtocolError, RemoteProtocolError):
            return
        for effect in step.effects:
            if isinstance(effect, fx.ForwardToBot):
                self.to_bot[effect.text] += 1
            elif isinstance(effect, fx.ForwardToAgent):
                self.to_agent[effect.text] += 1
            elif isinstance(effect, fx.ReportTransferOutcome):
                assert step.conversation.escalation is not None
                self.reports[step.conversation.escalation.number] += 1
        self.conv = attrs.evolve(step.conversation, outbox=())

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    @rule(kind=st.sampled_from(["unique", "agent", "endagentchat"]), dt=st.floats(0, 40))
    def user_says(self, kind: str, dt: float) -> None:
        text = kind
        if kind == "unique":
            self.counter += 1
            text = f"msg-{self.counter}"
            self.said.append(text)
        self.feed(ev.UserMessage(at=self.tick(dt), text=text))

    @rule(not_understood=st.booleans())
    def bot_replies(self, not_understood: bool) -> None:
        self.feed(ev.BotReplied(at=self.tick(1), text="bot", not_understood=not_understood))

    @rule()
    def bot_fails(self) -> None:
        self.feed(ev.BotFailed(at=self.tick(1)))

    @rule()
    def bot_escalates(self) -> None:
        self.feed(ev.BotEscalated(at=self.tick(1), message_id=f"m{self.counter}"))

    @rule()
    def bot_transfers(self) -> None:
        self.feed(ev.BotTransferRequested(at=self.tick(1), target_bot="b2"))

    @precondition(lambda self: self.conv.agent_session is not None)
    @rule(
        kind=st.sampled_from(
            [
                ev.AgentAccepted,
                ev.QueueUpdated,
                ev.AgentJoined,
                ev.AgentMessage,
                ev.AgentTyping,
                ev.AgentTransferred,
                ev.AgentEnded,
                ev.TransferRejected,
                ev.BackendSessionLost,
                ev.AgentCursorAdvanced,
            ]
        ),
        dt=st.floats(0, 40),
    )
    def agent_event(self, kind: type[ev.AgentEvent], dt: float) -> None:
        session = self.conv.agent_session
        assert session is not None
        fields: dict[str, Any] = {}
        if kind is ev.AgentMessage:
            fields["text"] = "agent says"
        if kind is ev.AgentTyping:
            fields["typing"] = True
        if kind is ev.TransferRejected:
            fields["reason"] = ev.RejectReason.NO_AGENT_AVAILABLE
        self.feed(kind(at=self.tick(dt), session=session, **fields))

    @precondition(lambda self: bool(self.conv.timers))
    @rule(data=st.data())
    def timer_fires(self, data: st.DataObject) -> None:
        timer = data.draw(st.sampled_from(self.conv.timers))
        at = max(self.now, timer.fires_at)
        self.now = at
        self.feed(ev.TimerFired(at=at, timer=timer.kind, timer_id=timer.timer_id))

    @rule()
    def user_leaves(self) -> None:
        self.feed(ev.UserLeft(at=self.tick(1)))

    @invariant()
    def nothing_the_user_said_is_lost_or_repeated(self) -> None:
        pending = Counter(m.text for m in self.conv.pending)
        for text in self.said:
            total = self.to_bot[text] + self.to_agent[text] + pending[text]
            assert total == 1, (text, self.to_bot[text], self.to_agent[text], pending[text])

    @invariant()
    def outcome_reported_exactly_once(self) -> None:
        assert all(count == 1 for count in self.reports.values()), self.reports
        if self.conv.state in BOT_OWNS and self.conv.escalations:
            assert self.reports[self.conv.escalations] == 1

    @invariant()
    def always_a_way_back_to_the_bot(self) -> None:
        conv = self.conv
        rescue = []
        if conv.state in WITH_SESSION:
            rescue.append(ev.UserMessage(at=self.now, text="endagentchat"))
        rescue.append(ev.UserMessage(at=self.now, text="hello"))
        for event in rescue:
            conv = attrs.evolve(handle(conv, event, self.policy).conversation, outbox=())
        assert conv.state is State.BOT

    @invariant()
    def record_is_consistent(self) -> None:
        check_record(self.conv)


TestConversationSequences = ConversationSequences.TestCase
TestConversationSequences.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
