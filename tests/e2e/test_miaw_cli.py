"""``handoff simulate miaw`` and ``handoff connect miaw`` as processes, and the demo over MIAW."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from handoff_adapters import demo
from handoff_adapters._serve import serve
from handoff_adapters.miaw import MiawBackend
from handoff_adapters.miaw.simulator import MiawController, MiawSimulator
from handoff_adapters.terminal import TerminalChannel

HANDOFF = [sys.executable, "-m", "handoff_adapters.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/_control/conversations", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the simulator never served {url}")


def test_connect_chats_with_the_simulated_agent() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    simulator = subprocess.Popen(
        [*HANDOFF, "simulate", "miaw", "--port", str(port), "--join-delay", "0.1"],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_until_serving(url)
        with subprocess.Popen(
            [
                *HANDOFF,
                "connect",
                "miaw",
                "--url",
                url,
                "--org-id",
                "00DSIM000000001",
                "--developer-name",
                "handoff_sim",
                "--routing",
                "_firstName=Ada",
                "--routing",
                "OrderNumber=A-1",
                "--lang",
                "fr",
                "--json",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as connect:
            assert connect.stdin is not None
            assert connect.stdout is not None
            lines: list[dict[str, object]] = []

            def read_until(predicate: object) -> None:
                assert connect.stdout is not None
                for raw in connect.stdout:
                    lines.append(json.loads(raw))
                    if predicate(lines[-1]):  # type: ignore[operator]
                        return
                raise AssertionError(f"output ended early: {lines}")

            read_until(lambda line: line.get("message_key") == "endChatFromUserInstruction")
            connect.stdin.write("bonjour\n")
            connect.stdin.flush()
            read_until(lambda line: line.get("text") == "You said: bonjour")
            connect.stdin.write("endagentchat\n")
            connect.stdin.flush()
            read_until(lambda line: line.get("state") == "user_ended")
            connect.stdin.close()
            assert connect.wait(10) == 0, connect.stderr.read() if connect.stderr else ""
        listed = httpx.get(url + "/_control/conversations").json()
        # No agent available: exit status 1 and the reason, on stderr.
        httpx.post(url + "/_control/faults", json={"available": False})
        # stdin stays open: EOF would end the chat before routing answers.
        with subprocess.Popen(
            [
                *HANDOFF,
                "connect",
                "miaw",
                "--url",
                url,
                "--org-id",
                "00DSIM000000001",
                "--developer-name",
                "handoff_sim",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as failed:
            status = failed.wait(30)
            assert failed.stderr is not None
            failure = failed.stderr.read()
    finally:
        simulator.terminate()
        simulator.wait(10)
    assert listed[0]["routingAttributes"] == {"_firstName": "Ada", "OrderNumber": "A-1"}
    assert listed[0]["userMessages"] == ["bonjour"]
    assert listed[0]["closed"] is True
    assert status == 1
    assert "transfer failed: No agents are available." in failure
    joined = [line for line in lines if line.get("message_key") == "agentJoinedMessage"]
    assert "Jane Agent" in str(joined[0]["text"])
    assert joined[0]["text"] != "Jane Agent has joined the chat."  # in French (--lang fr)
    assert joined[0]["state"] == "agent_connected"


@asynccontextmanager
async def _miaw_world(options: demo.DemoOptions) -> AsyncIterator[demo.DemoWorld]:
    simulator = MiawSimulator(
        auto_join="Ada",
        join_delay=max(0.4, 3 * options.pace),
        queue_position=2,
        estimated_wait=90,
        greeting="Hi, I'm {agent} from customer care. How can I help?",
    )
    async with (
        serve(simulator.app) as url,
        MiawBackend(url, simulator.org_id, simulator.developer_name) as backend,
    ):
        yield demo.DemoWorld(backend=backend, agent=MiawController(simulator))


@pytest.mark.anyio
async def test_the_demo_script_runs_over_miaw() -> None:
    factory = demo.BACKENDS.get("miaw", _miaw_world)
    out = io.StringIO()
    channel = TerminalChannel(out)
    async with factory(demo.DemoOptions(pace=0)) as world:
        await demo.run_demo(channel, world, pace=0)
    text = out.getvalue()
    assert "You are number 2 in the queue" in text or "number 2" in text
    assert "Ada has joined the chat." in text
    assert "It left our warehouse this morning" in text
    assert "You have ended the chat" in text
