"""Many concurrent MIAW conversations in one process: what does each one cost?

The MIAW simulator runs in a child process (``handoff simulate miaw``) so its memory is not
counted. This process runs one :class:`~handoff_core.runtime.Runtime` with one
:class:`~handoff_adapters.miaw.MiawBackend` and escalates N conversations: each mints a token,
holds an open SSE stream, is routed, gets an agent, and exchanges a message each way. Then it
reports RSS (and, with ``--tracemalloc``, Python heap) per conversation while all N streams are
open.

Run: ``python benchmarks/miaw_concurrency.py --conversations 1000 [--backend trio]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence

import anyio
import httpx

from handoff_adapters.miaw import MiawBackend
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.runtime import MemoryStore, Runtime


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class QuietBot:
    """Escalates when asked; otherwise says nothing worth measuring."""

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=time.time(), text="ok")]

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
        self.joined: set[str] = set()
        self.agent_messages: dict[str, int] = {}
        self.changed = anyio.Event()

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if delivery.message_key == "agentJoinedMessage":
            self.joined.add(conversation.id)
        elif delivery.sender is fx.Sender.AGENT and delivery.text == "hello user":
            self.agent_messages[conversation.id] = self.agent_messages.get(conversation.id, 0) + 1
        self.changed.set()
        self.changed = anyio.Event()

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        pass

    async def wait(self, done: Callable[[], bool], seconds: float) -> None:
        with anyio.fail_after(seconds):
            while not done():
                await self.changed.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_server(url: str) -> None:
    async with httpx.AsyncClient() as client:
        with anyio.fail_after(20):
            while True:
                try:
                    await client.get(url + "/_control/conversations")
                    return
                except httpx.TransportError:
                    await anyio.sleep(0.1)


async def run(count: int, use_tracemalloc: bool, url: str) -> dict[str, float]:
    await wait_for_server(url)
    channel = CountingChannel()
    backend = MiawBackend(url, "00DSIM000000001", "handoff_sim", heartbeat_timeout=120)
    runtime = Runtime(bot=QuietBot(), agents=backend, channel=channel, store=MemoryStore())
    limit = anyio.Semaphore(50)
    results: dict[str, float] = {}
    async with backend, runtime.running():
        # Warm up one conversation so imports, clients and pools are not billed to the N.
        await runtime.user_said("warmup", "agent")
        await channel.wait(lambda: "warmup" in channel.joined, 20)
        gc.collect()
        if use_tracemalloc:
            tracemalloc.start()
        heap_before = tracemalloc.get_traced_memory()[0] if use_tracemalloc else 0
        rss_before = rss_kib()
        started = time.perf_counter()

        async def escalate(number: int) -> None:
            async with limit:
                await runtime.user_said(f"c{number}", "agent")

        async with anyio.create_task_group() as group:
            for number in range(count):
                group.start_soon(escalate, number)
        await channel.wait(lambda: len(channel.joined) >= count + 1, 300)
        results["seconds_to_connect_all"] = time.perf_counter() - started

        # One message each way per conversation, over the open streams.
        async with httpx.AsyncClient(base_url=url) as control:
            conversations = (await control.get("/_control/conversations")).json()
            async with anyio.create_task_group() as group:
                for number in range(count):
                    group.start_soon(runtime.user_said, f"c{number}", "hello agent")
            for item in conversations:
                await control.post(
                    f"/_control/conversations/{item['id']}/say", json={"text": "hello user"}
                )
        await channel.wait(lambda: len(channel.agent_messages) >= count + 1, 300)
        await anyio.sleep(1)  # let any duplicate surface before counting
        gc.collect()
        rss_after = rss_kib()
        heap_after = tracemalloc.get_traced_memory()[0] if use_tracemalloc else 0
        results["conversations"] = count
        results["open_sessions"] = runtime.open_sessions
        results["rss_kib_per_conversation"] = (rss_after - rss_before) / count
        if use_tracemalloc:
            results["heap_kib_per_conversation"] = (heap_after - heap_before) / 1024 / count
        results["rss_mib_total"] = rss_after / 1024
        results["agent_messages_delivered"] = sum(channel.agent_messages.values())
        results["lost_or_duplicated"] = sum(
            1 for n in range(count) if channel.agent_messages.get(f"c{n}") != 1
        )
        results["backend_reconnects"] = backend.stats["reconnects"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the heap (slow)")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "handoff_adapters.cli",
            "simulate",
            "miaw",
            "--port",
            str(port),
            "--join-delay",
            "0",
            "--no-echo",
            "--greeting",
            "",
            "--ping-interval",
            "60",
        ],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        results = anyio.run(run, args.conversations, args.tracemalloc, url, backend=args.backend)
    finally:
        simulator.terminate()
        simulator.wait(10)
    results["backend"] = args.backend  # type: ignore[assignment]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
