"""Cost of one core step and memory of one idle conversation.

Prints absolute numbers and ratios against baselines measured in the same run:
* a plain dict-lookup state transition (the cheapest possible state machine step);
* ``attrs.evolve`` of the conversation record (the unavoidable copy of a frozen record).

Run: ``python benchmarks/core_step.py`` (or ``nox -s bench``).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable

import attrs

from handoff_core import events as ev
from handoff_core.conversation import Conversation, handle
from handoff_core.policy import Policy
from handoff_core.serialization import unstructure_conversation

POLICY = Policy()
T0 = 1_700_000_000.0


def drive(conv: Conversation, *events: ev.Event) -> Conversation:
    for event in events:
        conv = attrs.evolve(handle(conv, event, POLICY).conversation, outbox=())
    return conv


def in_bot(cid: str) -> Conversation:
    return drive(
        Conversation.new(cid),
        ev.UserMessage(at=T0, text="hello"),
        ev.BotReplied(at=T0, text="Hi! How can I help?"),
    )


def in_agent(cid: str) -> Conversation:
    conv = drive(in_bot(cid), ev.UserMessage(at=T0, text="agent"))
    session = conv.agent_session
    assert session is not None
    return drive(
        conv,
        ev.AgentSessionOpened(
            at=T0,
            session=session,
            backend="liveagent",
            cursor={"key": "k" * 60, "affinity": "a1b2", "ack": 3},
        ),
        ev.AgentAccepted(at=T0, session=session, queue_position=1, peer_id="1"),
        ev.AgentJoined(at=T0, session=session, agent_name="Ada", peer_id="2"),
    )


def per_call(fn: Callable[[], object], rounds: int = 7, number: int = 2_000) -> float:
    """Median seconds per call over ``rounds`` runs of ``number`` calls."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def memory_per_conversation(make: Callable[[str], Conversation], count: int = 2_000) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [make(f"conversation-{n:06d}") for n in range(count)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == count
    return (after - before) / count


def main() -> None:
    table = {
        ("bot", "user_message"): "bot",
        ("agent_connected", "agent_message"): "agent_connected",
    }
    state = "bot"

    def dict_step() -> object:
        return table[(state, "user_message")]

    bot_conv = in_bot("c")
    agent_conv = in_agent("c")
    session = agent_conv.agent_session
    assert session is not None
    user_msg = ev.UserMessage(at=T0 + 1, text="what are your opening hours?")
    agent_msg = ev.AgentMessage(at=T0 + 1, session=session, text="We open at 9.", peer_id="3")

    baseline_dict = per_call(dict_step, number=200_000)
    baseline_evolve = per_call(lambda: attrs.evolve(bot_conv, step=1), number=20_000)
    bot_step = per_call(lambda: handle(bot_conv, user_msg, POLICY))
    agent_step = per_call(lambda: handle(agent_conv, agent_msg, POLICY))
    escalate = per_call(lambda: handle(bot_conv, ev.UserMessage(at=T0, text="agent"), POLICY))

    print("one core step (median of 7 runs)")
    print(f"  baseline dict-lookup transition   {baseline_dict * 1e6:8.2f} µs")
    print(f"  baseline attrs.evolve(record)     {baseline_evolve * 1e6:8.2f} µs")
    for name, value in (
        ("user message → bot", bot_step),
        ("agent message → user", agent_step),
        ("user asks for an agent", escalate),
    ):
        print(
            f"  {name:<32}  {value * 1e6:8.2f} µs   "
            f"x{value / baseline_dict:,.0f} dict step, x{value / baseline_evolve:,.1f} evolve"
        )

    print("memory of one idle conversation (tracemalloc, 2,000 conversations)")
    baseline_dict_mem = memory_per_conversation(lambda cid: {"id": cid, "state": "bot"})  # type: ignore[arg-type,return-value]
    for name, make in (
        ("in bot (2 transcript lines)", in_bot),
        ("agent connected (cursor, audit)", in_agent),
    ):
        size = memory_per_conversation(make)
        stored = len(json.dumps(unstructure_conversation(make("c"))))
        print(
            f"  {name:<32}  {size / 1024:6.2f} KiB in memory "
            f"(x{size / baseline_dict_mem:.0f} a 2-key dict), {stored / 1024:5.2f} KiB as JSON"
        )


if __name__ == "__main__":
    main()
