"""The runtime at scale, in one process, with in-memory ports: 10,000 conversations.

What it measures (printed with ratios against baselines measured in the same run):

* CPU per user message that goes user → bot → user (two core steps, a store round trip each, the
  effects), against the bare core step of the same message (``handle`` alone);
* CPU per agent message relayed agent → user through a pumped agent session;
* memory per conversation with an open agent session (record + runtime bookkeeping + the pump
  task + its stream), against the record alone.

Run: ``python benchmarks/runtime_scale.py [--conversations 10000] [--backend trio]``
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation, handle
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.runtime import MemoryStore, Runtime
from handoff_core.serialization import structure_conversation, unstructure_conversation


class EchoBot:
    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=time.time(), text=message.text)]

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return []

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        return []


class CountingChannel:
    def __init__(self) -> None:
        self.delivered = 0
        self.done = anyio.Event()
        self.expect = 0

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        self.delivered += 1
        if self.expect and self.delivered >= self.expect:
            self.done.set()

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        pass


class MemoryAgents:
    """Every session is a small memory stream; an agent joins at once."""

    name = "memory"

    def __init__(self) -> None:
        self.streams: dict[
            str,
            tuple[MemoryObjectSendStream[ev.AgentEvent], MemoryObjectReceiveStream[ev.AgentEvent]],
        ] = {}

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        return True

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        send, receive = anyio.create_memory_object_stream[ev.AgentEvent](4)
        self.streams[request.session] = (send, receive)
        send.send_nowait(ev.AgentJoined(at=time.time(), session=request.session, agent_name="Ada"))
        return {"n": 0}

    async def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        async for event in self.streams[session][1]:
            yield event

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        pass

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None:
        pass

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        pass

    def close_all(self) -> None:
        for send, receive in self.streams.values():
            send.close()
            receive.close()


def cpu() -> float:
    return time.process_time()


async def run(conversations: int, backend: str) -> None:
    policy = Policy(queue_timeout=None)
    channel, agents = CountingChannel(), MemoryAgents()
    runtime = Runtime(
        bot=EchoBot(), agents=agents, channel=channel, store=MemoryStore(), policy=policy
    )
    ids = [f"conversation-{n:06d}" for n in range(conversations)]

    # Baseline: the core step for the same user message, no runtime.
    start = cpu()
    for _ in range(conversations):
        handle(Conversation.new("c"), ev.UserMessage(at=1, text="what are your hours?"), policy)
    core_step = (cpu() - start) / conversations

    async with runtime.running():
        # 1. Bot path, all conversations concurrently.
        channel.expect = conversations
        start = cpu()
        async with anyio.create_task_group() as tg:
            for cid in ids:
                tg.start_soon(runtime.user_said, cid, "what are your hours?")
        await channel.done.wait()
        bot_turn = (cpu() - start) / conversations

        # 2. Every conversation escalates and keeps an open agent session.
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        async with anyio.create_task_group() as tg:
            for cid in ids:
                tg.start_soon(runtime.user_said, cid, "agent")
        with anyio.fail_after(120):
            # user → bot → reply, then escalate, session opened, agent joined: 5 steps each.
            while runtime.stats["steps"] < conversations * 5:  # noqa: ASYNC110 - a counter
                await anyio.sleep(0.05)
        gc.collect()
        with_session = (tracemalloc.get_traced_memory()[0] - before) / conversations
        tracemalloc.stop()
        sample = await runtime.get(ids[-1])
        assert sample is not None
        assert sample.state is State.AGENT_CONNECTED

        # 3. Agent path: every agent says one thing.
        gc.freeze()  # the long-lived objects exist now (design.md: GC otherwise dominates p99)
        channel.delivered, channel.expect, channel.done = 0, conversations, anyio.Event()
        start = cpu()
        for cid in ids:
            agents.streams[f"{cid}#1"][0].send_nowait(
                ev.AgentMessage(at=time.time(), session=f"{cid}#1", text="Hello from Ada")
            )
        await channel.done.wait()
        agent_turn = (cpu() - start) / conversations
        records = [await runtime.get(cid) for cid in ids]
    agents.close_all()  # after the runtime stopped, so no pump sees its stream close

    # Baseline for memory: the same records alone (copies made under tracemalloc).
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    copies = [structure_conversation(unstructure_conversation(r)) for r in records if r]
    gc.collect()
    record_alone = (tracemalloc.get_traced_memory()[0] - before) / len(copies)
    tracemalloc.stop()

    print(f"{conversations:,} conversations, runtime + in-memory ports ({backend})")
    print(f"  core step alone (baseline)           {core_step * 1e6:8.1f} µs CPU")
    print(
        f"  user → bot → user, whole runtime     {bot_turn * 1e6:8.1f} µs CPU"
        f"  x{bot_turn / core_step:.1f} the core step"
    )
    print(
        f"  agent → user through a pump          {agent_turn * 1e6:8.1f} µs CPU"
        f"  x{agent_turn / core_step:.1f} the core step"
    )
    print(
        f"  memory per conversation with an open agent session {with_session / 1024:6.2f} KiB"
        f"  x{with_session / record_alone:.1f} the record alone ({record_alone / 1024:.2f} KiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    args = parser.parse_args()
    anyio.run(run, args.conversations, args.backend, backend=args.backend)


if __name__ == "__main__":
    main()
