"""How many concurrent Live Agent long polls one process can carry, per HTTP client layout.

The simulator runs in its own process (``handoff simulate liveagent``) so the two share no core.
This process opens N sessions through :class:`LiveAgentBackend`, follows each with
``events()`` (one long poll per session), then asks the simulator to make every agent say
something, R rounds in a row, and measures: messages delivered, latency from the broadcast to the
event (p50/p99), and this process's CPU time. The layouts compared:

* ``shards=1``: every long poll through one ``httpx.AsyncClient``;
* ``shards=32``: the default of :class:`handoff_adapters._http.HttpClients`;
* ``shards=N``: one client per conversation.

Measured here (2 cores shared with other work, 5 rounds, simulator in its own process):

=========  =======  ==========  ========  ========  =========
sessions   shards   CPU/msg     p50       p99       msgs/s
=========  =======  ==========  ========  ========  =========
200        1        21.5 ms     2.5 s     6.3 s     46
200        32       1.3 ms      0.23 s    0.51 s    495
200        200      1.1 ms      0.16 s    0.29 s    774
1000       1        35 ms       18.5 s    54 s      27 (24 % not delivered within 20 s)
1000       32       4.0 ms      1.6 s     6.1 s     231
1000       64       2.7 ms      2.1 s     8.2 s     193
1000       256      1.3 ms      1.1 s     2.0 s     596
1000       1000     1.2 ms      1.1 s     2.4 s     544
=========  =======  ==========  ========  ========  =========

Every run: zero messages lost or duplicated. Latency at 1,000 is the burst (1,000 messages at once)
divided by one core's throughput; the pool's bookkeeping is what grows with connections per client.

Run: ``.venv/bin/python benchmarks/liveagent_concurrency.py --sessions 200 1000 --shards 1 32 0``
(``0`` means one shard per session). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx

from handoff_adapters._http import HttpClients
from handoff_adapters.liveagent import LiveAgentBackend, LiveAgentConfig
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(sessions: int, shards: int, rounds: int, url: str) -> dict[str, Any]:
    control = httpx.AsyncClient(base_url=url, timeout=60)
    config = LiveAgentConfig(
        endpoint=url,
        organization_id="00D",
        deployment_id="572",
        button_id="573",
        message_gap=0,
        backoff=0.2,
    )
    http = HttpClients(shards=shards or sessions, short_connections=16, timeout=60)
    backend = LiveAgentBackend(config, http=http)
    arrivals: dict[str, list[float]] = {}
    sent_at: dict[str, float] = {}
    cursors: dict[str, ev.Cursor] = {}

    context = fx.HandoffContext(
        conversation_id="b",
        language="en",
        user_name="Bench",
        reason=ev.EscalationReason.USER_REQUEST,
        targets=(),
        prechat={},
        variables={},
        transcript=(),
    )
    limit = anyio.Semaphore(50)

    async def open_one(index: int) -> None:
        async with limit:
            request = fx.OpenAgentSession(
                key=f"k{index}", session=f"s{index}", ordinal=1, context=context
            )
            cursors[f"s{index}"] = await backend.open(Conversation.new(f"c{index}"), request)

    async def follow(session: str) -> None:
        conversation = Conversation.new(session)
        async for event in backend.events(conversation, session, cursors[session]):
            if isinstance(event, ev.AgentMessage):
                arrivals.setdefault(event.text, []).append(time.perf_counter())

    started_open = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(sessions):
            group.start_soon(open_one, index)
    open_seconds = time.perf_counter() - started_open
    gc.freeze()  # long-lived objects exist now; keep the collector off them (design.md)
    result: dict[str, Any] = {
        "sessions": sessions,
        "shards": shards or sessions,
        "open_s": round(open_seconds, 2),
    }
    async with anyio.create_task_group() as group:
        for session in cursors:
            group.start_soon(follow, session)
        await anyio.sleep(0.5)
        await control.post("/_control/broadcast", json={"action": "join", "name": "Ada"})
        await anyio.sleep(1.0)
        cpu_before, wall_before = cpu(), time.perf_counter()
        for round_ in range(rounds):
            text = f"round {round_}"
            sent_at[text] = time.perf_counter()
            await control.post("/_control/broadcast", json={"action": "say", "text": text})
            with anyio.move_on_after(20):
                while len(arrivals.get(text, ())) < sessions:  # noqa: ASYNC110 - sampling
                    await anyio.sleep(0.01)
        wall = time.perf_counter() - wall_before
        used = cpu() - cpu_before
        group.cancel_scope.cancel()
    latencies = sorted(
        (arrival - sent_at[text]) * 1000 for text, times in arrivals.items() for arrival in times
    )
    delivered = sum(len(times) for times in arrivals.values())
    expected = sessions * rounds
    result.update(
        delivered=f"{delivered}/{expected}",
        duplicates=sum(max(0, len(t) - sessions) for t in arrivals.values()),
        p50_ms=round(statistics.median(latencies), 1) if latencies else None,
        p99_ms=round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        msgs_per_s=round(delivered / wall, 1),
        cpu_s=round(used, 2),
        cpu_ms_per_msg=round(used * 1000 / max(delivered, 1), 2),
    )
    await control.post("/_control/broadcast", json={"action": "end"})
    await backend.aclose()
    await control.aclose()
    gc.unfreeze()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 32, 0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for sessions in args.sessions:
        for shards in args.shards:
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "handoff_adapters.cli",
                    "simulate",
                    "liveagent",
                    "--port",
                    str(port),
                    "--agent-delay",
                    "-1",
                    "--no-echo",
                    "--poll-timeout",
                    "25",
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                time.sleep(1.5)
                result = anyio.run(run, sessions, shards, args.rounds, f"http://127.0.0.1:{port}")
                print(result, flush=True)
            finally:
                server.terminate()
                server.wait()


if __name__ == "__main__":
    main()
