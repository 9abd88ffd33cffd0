"""``handoff connect liveagent`` as a subprocess against the simulator served by the test."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from handoff_adapters._serve import serve
from handoff_adapters.liveagent.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio


def command(url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "handoff_adapters.cli",
        "connect",
        "liveagent",
        "--endpoint",
        url,
        "--org-id",
        "00D000000000001",
        "--deployment-id",
        "572000000000001",
        "--button-id",
        "573000000000001",
        "--visitor-name",
        "Jon",
        "--prechat",
        "Email=jon@example.com",
        *extra,
    ]


async def next_record(lines: BufferedByteReceiveStream) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(await lines.receive_until(b"\n", 1 << 20))
    return record


async def read_until(
    lines: BufferedByteReceiveStream, seen: list[dict[str, Any]], key: str, value: object
) -> None:
    with anyio.fail_after(10):
        while not seen or seen[-1].get(key) != value:
            seen.append(await next_record(lines))


async def test_connect_chats_with_the_agent_and_ends_on_eof() -> None:
    simulator = Simulator(SimulatorConfig(agent_delay=0.1, echo=True, greeting=None))
    async with serve(simulator.app) as url:
        process: Process
        async with await anyio.open_process(command(url, "--json")) as process:
            assert process.stdin is not None
            assert process.stdout is not None
            lines = BufferedByteReceiveStream(process.stdout)
            seen: list[dict[str, Any]] = []
            await read_until(lines, seen, "message_key", "endChatFromUserInstruction")
            await process.stdin.send(b"Where is my parcel?\n")
            await read_until(lines, seen, "text", "You said: Where is my parcel?")
            await process.stdin.aclose()  # EOF ends the chat cleanly
            await read_until(lines, seen, "message_key", "userEndedMessage")
            with anyio.fail_after(10):
                assert await process.wait() == 0
    states = [(r["state"], r["kind"]) for r in seen]
    assert ("queued", "message") in states
    assert ("agent_connected", "user") in states
    user = next(r for r in seen if r["kind"] == "user")
    assert user["text"] == "Where is my parcel?"
    agent = next(r for r in seen if r["sender"] == "agent" and r["kind"] == "message")
    assert agent["agent"] == "Ada"
    (session,) = simulator.sessions.values()
    assert session.end_reason == "client"  # ChatEnd was sent
    assert session.texts == ["Where is my parcel?"]
    assert session.init is not None
    assert session.init.visitor_name == "Jon"
    assert next((d.label, d.value) for d in session.init.prechat_details) == (
        "Email",
        "jon@example.com",
    )
    assert not session.violations


async def test_connect_exits_non_zero_with_a_reason_when_no_agent() -> None:
    simulator = Simulator(SimulatorConfig(default_available=False))
    async with serve(simulator.app) as url:
        with anyio.fail_after(20):
            async with await anyio.open_process(command(url)) as process:
                assert process.stdout is not None
                assert process.stderr is not None
                status = await process.wait()
                out = (await process.stdout.receive()).decode()
                err = b""
                with anyio.move_on_after(1):
                    async for chunk in process.stderr:
                        err += chunk
    assert status == 1
    assert "no agent is available" in out
    last = [line for line in err.decode().splitlines() if line.strip()][-1]
    assert (
        last
        == "handoff connect: transfer failed: Live Agent refused the chat request (Unavailable)"
    )
