"""How many concurrent Live Agent long polls one process can carry, per HTTP client layout.

The simulator runs in its own process (``handoff simulate liveagent``) so the two share no core.
This process opens N sessions through :class:`LiveAgentBackend`, follows each with
``events()`` (one long poll per session), then asks the simulator to make every agent say
something, R rounds in a row, and measures: messages delivered, latency from the broadcast to the
event (p50/p99), and this process's CPU time. The layouts compared:

* ``shards=1``: every long poll through one ``httpx.AsyncClient``;
* ``shards=32``: the default of :class:`handoff_adapters._http.HttpClients`;
* ``shards=N``: one client per conversation, the baseline.

For every session count, CPU per message, p50 and p99 are printed as ratios against the
one-client-per-session layout measured in the same run (added to the sweep when ``--shards``
leaves it out). The default run (200 and 400 sessions, 2 rounds) takes about 70 s here.

Measured here (2 cores shared with other work, 5 rounds, simulator in its own process; ratios
against the one-client-per-session row of the same session count):

=========  =======  ==============  =============  ============  =========
sessions   shards   CPU/msg         p50            p99           msgs/s
=========  =======  ==============  =============  ============  =========
200        1        21.5 ms (x19)   2.5 s (x16)    6.3 s (x22)   46
200        32       1.3 ms (x1.2)   0.23 s (x1.4)  0.51 s (x1.8) 495
200        200      1.1 ms (x1)     0.16 s (x1)    0.29 s (x1)   774
1000       1        35 ms (x29)     18.5 s (x17)   54 s (x23)    27 (24 % not delivered within 20 s)
1000       32       4.0 ms (x3.3)   1.6 s (x1.5)   6.1 s (x2.5)  231
1000       64       2.7 ms (x2.3)   2.1 s (x1.9)   8.2 s (x3.4)  193
1000       256      1.3 ms (x1.1)   1.1 s (x1.0)   2.0 s (x0.8)  596
1000       1000     1.2 ms (x1)     1.1 s (x1)     2.4 s (x1)    544
=========  =======  ==============  =============  ============  =========

Every run: zero messages lost or duplicated. Latency at 1,000 is the burst (1,000 messages at once)
divided by one core's throughput; the pool's bookkeeping is what grows with connections per client.

Reproduce the table (about 15 minutes):
``.venv/bin/python benchmarks/liveagent_concurrency.py --sessions 200 1000 --shards 1 32 64 256 0
--rounds 5`` (``0`` means one shard per session; the table leaves out the 200-session rows for 64
and 256). Default run: ``.venv/bin/python benchmarks/liveagent_concurrency.py``. Not part of the
test suite.
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


def wait_for_port(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def measure(sessions: int, shards: int, rounds: int) -> dict[str, Any]:
    """One layout against a fresh simulator process."""
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
        wait_for_port(port)
        result: dict[str, Any] = anyio.run(
            run, sessions, shards, rounds, f"http://127.0.0.1:{port}"
        )
        return result
    finally:
        server.terminate()
        server.wait()


def ratio(value: float | None, baseline: float | None) -> str:
    if value is None or not baseline:
        return "n/a"
    return f"x{value / baseline:.2f}"


def report(sessions: int, rounds: int, results: list[dict[str, Any]]) -> None:
    base = results[0]
    print(
        f"Live Agent: {sessions:,} sessions, {rounds} rounds; ratios against one client per "
        f"session (shards={sessions}), same run",
    )
    print(
        f"  {'layout':<22} {'CPU/msg':>9} {'ratio':>7} {'p50':>9} {'ratio':>7} "
        f"{'p99':>9} {'ratio':>7} {'msgs/s':>8} {'delivered':>12} {'dups':>5}"
    )
    for result in results:
        layout = f"shards={result['shards']}" + (" (baseline)" if result is base else "")
        p50, p99 = result["p50_ms"], result["p99_ms"]
        print(
            f"  {layout:<22} {result['cpu_ms_per_msg']:6.2f} ms "
            f"{ratio(result['cpu_ms_per_msg'], base['cpu_ms_per_msg']):>7} "
            f"{'-' if p50 is None else f'{p50 / 1000:7.3f} s'} "
            f"{ratio(p50, base['p50_ms']):>7} "
            f"{'-' if p99 is None else f'{p99 / 1000:7.3f} s'} "
            f"{ratio(p99, base['p99_ms']):>7} "
            f"{result['msgs_per_s']:8.0f} {result['delivered']:>12} {result['duplicates']:>5}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[200, 400])
    parser.add_argument(
        "--shards",
        type=int,
        nargs="+",
        default=[1, 32, 0],
        help="clients for the long polls; 0 = one per session (the baseline, always measured)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for sessions in args.sessions:
        # The baseline first, then the other layouts in the order given, each once.
        layouts = [sessions]
        for shards in args.shards:
            if (shards or sessions) not in layouts:
                layouts.append(shards or sessions)
        results = [measure(sessions, shards, args.rounds) for shards in layouts]
        report(sessions, args.rounds, results)


if __name__ == "__main__":
    main()
