"""Many concurrent MIAW conversations in one process: what does each one cost?

The MIAW simulator runs in a child process (``handoff simulate miaw``) so its memory is not
counted. Two more child processes, one after the other, each hold N streams open against it:

* the baseline: N bare SSE streams with plain httpx and httpx-sse, each with a guest token minted
  through the simulator's token endpoint exactly as the adapter mints it, opened with the
  adapter's headers over the same client layout as :class:`handoff_adapters._http.HttpClients`'
  defaults (32 stream clients sharing one SSL context, one short client of 16 connections), and
  read until the end;
* handoff: one :class:`~handoff_core.runtime.Runtime` with one
  :class:`~handoff_adapters.miaw.MiawBackend` escalating N conversations: each mints a token,
  holds an open SSE stream, is routed, gets an agent, and exchanges a message each way.

Each child warms up one stream first (imports, clients, pools are not billed to the N), then
reports the growth of its RSS (and, with ``--tracemalloc``, of its Python heap) per stream while
all N are open. Printed: both, and handoff's as a ratio to the bare stream's, so the ratio is what
a conversation costs on top of the stream it cannot do without.

Measured here (2 cores shared with other work, asyncio, simulator in its own process):

=============  ==================  ==================  =======  =====================
conversations  handoff RSS/conv    bare SSE RSS/conv   ratio    seconds to connect all
=============  ==================  ==================  =======  =====================
1,000          68.3 KiB            42.3 KiB            x1.61    8.2 (bare 4.3)
2,000          67.8 KiB            42.8 KiB            x1.58    15.9 (bare 7.9)
=============  ==================  ==================  =======  =====================

With ``--tracemalloc`` at 1,000: Python heap 41.4 KiB per conversation against 39.9 KiB per bare
stream (x1.04); tracemalloc's own bookkeeping doubles the RSS figures of that run (132.4 against
87.5 KiB). Every run: every agent message delivered once, no reconnects. So the stream itself
(token, connection, buffers, SSE parser) is most of a conversation's cost, and the Python objects
handoff adds on top are small; most of the RSS gap (x1.6) is not live Python heap.

Reproduce: ``.venv/bin/python benchmarks/miaw_concurrency.py --conversations 1000`` (then
``2000``, and ``1000 --tracemalloc``; about 25, 45 and 55 s); ``--backend trio`` for trio. Default
run (no arguments): 300 conversations, about 10 s. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource

from handoff_adapters.miaw import MiawBackend
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.runtime import MemoryStore, Runtime

ORG_ID = "00DSIM000000001"
DEVELOPER_NAME = "handoff_sim"
HEARTBEAT = 120.0
#: Concurrent opens, both children.
OPENING = 50
#: The client layout of HttpClients' defaults, rebuilt with plain httpx for the baseline.
STREAM_CLIENTS = 32
SHORT_CONNECTIONS = 16


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


def wait_for_server(url: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url + "/_control/conversations")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Memory:
    """RSS (and, optionally, the tracemalloc heap) from ``start()`` to ``stop()``, per item."""

    def __init__(self, use_tracemalloc: bool) -> None:
        self.use_tracemalloc = use_tracemalloc

    def start(self) -> None:
        gc.collect()
        if self.use_tracemalloc:
            tracemalloc.start()
        self.heap_before = tracemalloc.get_traced_memory()[0] if self.use_tracemalloc else 0
        self.rss_before = rss_kib()

    def stop(self, count: int, results: dict[str, Any]) -> None:
        gc.collect()
        rss_after = rss_kib()
        results["rss_kib_per_conversation"] = (rss_after - self.rss_before) / count
        if self.use_tracemalloc:
            heap_after = tracemalloc.get_traced_memory()[0]
            results["heap_kib_per_conversation"] = (heap_after - self.heap_before) / 1024 / count
        results["rss_mib_total"] = rss_after / 1024


async def run_handoff(count: int, use_tracemalloc: bool, url: str) -> dict[str, Any]:
    channel = CountingChannel()
    backend = MiawBackend(url, ORG_ID, DEVELOPER_NAME, heartbeat_timeout=HEARTBEAT)
    runtime = Runtime(bot=QuietBot(), agents=backend, channel=channel, store=MemoryStore())
    limit = anyio.Semaphore(OPENING)
    memory = Memory(use_tracemalloc)
    results: dict[str, Any] = {}
    async with backend, runtime.running():
        # Warm up one conversation so imports, clients and pools are not billed to the N.
        await runtime.user_said("warmup", "agent")
        await channel.wait(lambda: "warmup" in channel.joined, 20)
        memory.start()
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
        memory.stop(count, results)
        results["open_sessions"] = runtime.open_sessions
        results["agent_messages_delivered"] = sum(channel.agent_messages.values())
        results["lost_or_duplicated"] = sum(
            1 for n in range(count) if channel.agent_messages.get(f"c{n}") != 1
        )
        results["backend_reconnects"] = backend.stats["reconnects"]
    return results


async def run_bare(count: int, use_tracemalloc: bool, url: str) -> dict[str, Any]:
    """The baseline: N guest tokens and N SSE streams, plain httpx + httpx-sse, nothing else."""
    verify = ssl.create_default_context()  # one for every client, as HttpClients does
    timeout = httpx.Timeout(30.0)
    stream_clients: list[httpx.AsyncClient | None] = [None] * STREAM_CLIENTS
    short = httpx.AsyncClient(
        timeout=timeout,
        verify=verify,
        limits=httpx.Limits(
            max_connections=SHORT_CONNECTIONS, max_keepalive_connections=SHORT_CONNECTIONS
        ),
    )
    limit = anyio.Semaphore(OPENING)
    opened = 0
    changed = anyio.Event()
    events = 0

    def stream_client(number: int) -> httpx.AsyncClient:
        client = stream_clients[number % STREAM_CLIENTS]
        if client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            client = httpx.AsyncClient(timeout=timeout, verify=verify, limits=limits)
            stream_clients[number % STREAM_CLIENTS] = client
        return client

    async def hold(number: int) -> None:
        nonlocal opened, changed, events
        async with limit:
            # The adapter's guest token request (MiawBackend._mint) and stream (_connect).
            minted = await short.post(
                url + "/iamessage/api/v2/authorization/unauthenticated/access-token",
                json={
                    "orgId": ORG_ID[:15],
                    "esDeveloperName": DEVELOPER_NAME,
                    "capabilitiesVersion": "1",
                    "platform": "Web",
                    "context": {"appName": "handoff", "clientVersion": "1"},
                },
            )
            minted.raise_for_status()
            token = minted.json()
            client = stream_client(number)
            request = client.build_request(
                "GET",
                url + "/eventrouter/v1/sse",
                headers={
                    "Accept": "text/event-stream",
                    "Cache-Control": "no-store",
                    "Authorization": f"Bearer {token['accessToken']}",
                    "X-Org-Id": ORG_ID[:15],
                    "Last-Event-Id": token.get("lastEventId") or "0",
                },
                timeout=httpx.Timeout(10.0, read=HEARTBEAT),
            )
            response = await client.send(request, stream=True)
        try:
            if response.status_code != 200:
                raise RuntimeError(f"event stream: HTTP {response.status_code}")
            opened += 1
            changed.set()
            changed = anyio.Event()
            async for _ in EventSource(response).aiter_sse():
                events += 1
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def wait_until(target: int) -> None:
        with anyio.fail_after(300):
            while opened < target:
                await changed.wait()

    results: dict[str, Any] = {}
    memory = Memory(use_tracemalloc)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(hold, -1)  # warm-up stream, not billed to the N
            await wait_until(1)
            memory.start()
            started = time.perf_counter()
            for number in range(count):
                group.start_soon(hold, number)
            await wait_until(count + 1)
            results["seconds_to_connect_all"] = time.perf_counter() - started
            await anyio.sleep(1)  # as long as handoff's settling pause
            memory.stop(count, results)
            results["streams_open"] = opened
            group.cancel_scope.cancel()
    finally:
        for client in [*stream_clients, short]:
            if client is not None:
                await client.aclose()
    return results


def child(kind: str, args: argparse.Namespace, url: str) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--url",
        url,
        "--conversations",
        str(args.conversations),
        "--backend",
        args.backend,
    ]
    if args.tracemalloc:
        command.append("--tracemalloc")
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True, timeout=900)
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def report(args: argparse.Namespace, handoff: dict[str, Any], bare: dict[str, Any]) -> None:
    print(
        f"MIAW: {args.conversations:,} conversations held open ({args.backend}), "
        "each side in its own process, simulator in another"
    )
    print(f"  {'':34} {'handoff':>10} {'bare SSE':>10} {'ratio':>8}")
    rows = [("RSS per conversation (KiB)", "rss_kib_per_conversation")]
    if args.tracemalloc:
        rows.append(("Python heap per conversation (KiB)", "heap_kib_per_conversation"))
    for name, key in rows:
        value, baseline = handoff[key], bare[key]
        ratio = f"x{value / baseline:.2f}" if baseline > 0 else "n/a"
        print(f"  {name:34} {value:10.1f} {baseline:10.1f} {ratio:>8}")
    print(
        f"  {'seconds to connect all':34} {handoff['seconds_to_connect_all']:10.1f} "
        f"{bare['seconds_to_connect_all']:10.1f}"
    )
    print(
        f"  {'RSS total (MiB)':34} {handoff['rss_mib_total']:10.1f} {bare['rss_mib_total']:10.1f}"
    )
    print(
        f"  handoff: {handoff['open_sessions']} agent sessions open, "
        f"{handoff['agent_messages_delivered']} agent messages delivered, "
        f"{handoff['lost_or_duplicated']} lost or duplicated, "
        f"{handoff['backend_reconnects']} reconnects; bare: {bare['streams_open']} streams open",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--tracemalloc", action="store_true", help="also measure the heap (slow)")
    parser.add_argument("--child", choices=["handoff", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        measure = run_handoff if args.child == "handoff" else run_bare
        results = anyio.run(
            measure, args.conversations, args.tracemalloc, args.url, backend=args.backend
        )
        print(json.dumps(results))
        return 0
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
        wait_for_server(url)
        bare = child("bare", args, url)
        handoff = child("handoff", args, url)
    finally:
        simulator.terminate()
        simulator.wait(10)
    report(args, handoff, bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
