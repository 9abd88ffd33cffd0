"""``handoff simulate liveagent`` and ``handoff connect liveagent``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import anyio

from handoff_adapters.liveagent.client import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.terminal import TerminalChannel
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.runtime import MemoryStore, Runtime

if TYPE_CHECKING:
    from handoff_adapters.cli import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    simulate = commands.simulate.add_parser(
        "liveagent",
        help="a Salesforce Live Agent (Chat REST API) server for offline development",
        description="Serve the Live Agent visitor API under /chat/rest and a control API under "
        "/_control (GET /_control/sessions; POST /_control/sessions/latest/say "
        '{"text": "..."}; …/join, …/typing, …/transfer, …/end, …/fault; '
        'POST /_control/availability {"available": false}).',
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument(
        "--agent-delay",
        type=float,
        default=2.0,
        help="seconds until an agent accepts (negative: only via /_control)",
    )
    simulate.add_argument("--agent-name", default="Ada")
    simulate.add_argument(
        "--queue-position",
        type=int,
        default=1,
        help="queue position announced before the agent joins",
    )
    simulate.add_argument(
        "--no-echo",
        dest="echo",
        action="store_false",
        help="the agent does not answer 'You said: …' to every message",
    )
    simulate.add_argument("--unavailable", action="store_true", help="no agent is available")
    simulate.add_argument("--org-id", help="accept only this organizationId")
    simulate.add_argument(
        "--poll-timeout",
        type=int,
        default=30,
        help="clientPollTimeout in seconds (how long a poll is held)",
    )
    simulate.set_defaults(handler=_simulate)

    connect = commands.connect.add_parser(
        "liveagent",
        help="chat with a Live Agent (or its simulator) as the end user",
        description="Lines from stdin go to the agent; EOF or the end keyword ends the chat. "
        "Exit status 0 on a normal end, 1 with a one-line reason if the transfer fails.",
    )
    connect.add_argument(
        "--endpoint",
        required=True,
        help="Chat API endpoint, e.g. https://d.la1-c1-frf.salesforceliveagent.com"
        "/chat/rest/ or http://127.0.0.1:8080",
    )
    connect.add_argument("--org-id", required=True)
    connect.add_argument("--deployment-id", required=True)
    connect.add_argument("--button-id", required=True)
    connect.add_argument("--visitor-name", default="Visitor")
    connect.add_argument(
        "--prechat",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pre-chat detail (repeatable), e.g. Email=jon@example.com",
    )
    connect.add_argument("--lang", default="en", help="language of the system messages")
    connect.add_argument("--json", action="store_true", help="one JSON object per line")
    connect.add_argument("--api-version", type=int, default=47)
    connect.add_argument(
        "--queue-timeout",
        type=float,
        default=600.0,
        help="give up waiting for an agent after this many seconds",
    )
    connect.set_defaults(handler=_connect)


# -- simulate -------------------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    from handoff_adapters._serve import serve_forever
    from handoff_adapters.liveagent.simulator import Simulator, SimulatorConfig

    config = SimulatorConfig(
        organization_id=args.org_id,
        agent_name=args.agent_name,
        agent_delay=None if args.agent_delay < 0 else args.agent_delay,
        queue_position=args.queue_position,
        echo=args.echo,
        default_available=not args.unavailable,
        client_poll_timeout=args.poll_timeout,
    )
    simulator = Simulator(config)
    print(
        f"Live Agent simulator: http://{args.host}:{args.port}/chat/rest "
        f"(control API: http://{args.host}:{args.port}/_control/sessions)",
        flush=True,
    )
    anyio.run(serve_forever, simulator.app, args.host, args.port)
    return 0


# -- connect --------------------------------------------------------------------------------------


class _NoBot:
    """``connect`` talks to an agent only: there is no bot, just the transfer outcome."""

    def __init__(self) -> None:
        self.outcome: fx.ReportTransferOutcome | None = None

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return []

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return []

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        self.outcome = report
        return []


def _prechat(pairs: Sequence[str]) -> dict[str, ev.Scalar]:
    values: dict[str, ev.Scalar] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"handoff connect: --prechat expects KEY=VALUE, got {pair!r}")
        values[key.strip()] = value
    return values


async def _stdin_lines() -> AsyncIterator[str]:
    """Lines from stdin without blocking the event loop (a pipe, a terminal or a file)."""
    fd = sys.stdin.fileno()
    buffer = b""
    while True:
        try:
            await anyio.wait_readable(fd)
            chunk = os.read(fd, 65536)
        except (OSError, ValueError, NotImplementedError):
            # A regular file can't be watched: read it in a worker thread instead.
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            yield line.rstrip("\r\n")
            continue
        if not chunk:
            if buffer:
                yield buffer.decode(errors="replace")
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace").rstrip("\r")


async def _chat(args: argparse.Namespace) -> int:
    config = LiveAgentConfig(
        endpoint=args.endpoint,
        organization_id=args.org_id,
        deployment_id=args.deployment_id,
        button_id=args.button_id,
        visitor_name=args.visitor_name,
        api_version=args.api_version,
    )
    prechat = _prechat(args.prechat)
    channel = TerminalChannel(sys.stdout, json=args.json)
    bot = _NoBot()
    policy = Policy(queue_timeout=args.queue_timeout)
    cid = "terminal"
    finished = anyio.Event()

    def watch(conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if conversation.agent_session is None:  # the agent session is over, one way or another
            finished.set()

    channel.observers.append(watch)
    async with LiveAgentBackend(config) as backend:
        runtime = Runtime(
            bot=bot, agents=backend, channel=channel, store=MemoryStore(), policy=policy
        )
        async with runtime.running():
            await runtime.start(
                cid, language=args.lang, user_name=args.visitor_name, prechat=prechat
            )
            await runtime.feed(
                cid,
                ev.BotEscalated(
                    at=time.time(), reason=ev.EscalationReason.USER_REQUEST, prechat=prechat
                ),
            )
            async with anyio.create_task_group() as task_group:

                async def read_user() -> None:
                    async for line in _stdin_lines():
                        if line.strip():
                            if args.json:  # a pipe reading the output sees both sides
                                channel.user(await runtime.get(cid), line)
                            await runtime.user_said(cid, line)
                    # EOF: end the chat cleanly (ChatEnd), as the end keyword would.
                    await runtime.user_said(cid, policy.end_keyword)

                task_group.start_soon(read_user)
                await finished.wait()
                task_group.cancel_scope.cancel()
            conversation = await runtime.get(cid)
    return _exit_status(conversation, bot.outcome)


def _exit_status(
    conversation: Conversation | None, outcome: fx.ReportTransferOutcome | None
) -> int:
    if conversation is None:
        print("handoff connect: the conversation vanished", file=sys.stderr)
        return 1
    if conversation.state is State.TRANSFER_FAILED:
        reason = outcome.description if outcome is not None else "the transfer failed"
        print(f"handoff connect: transfer failed: {reason}", file=sys.stderr)
        return 1
    cause = conversation.audit[-1].cause if conversation.audit else ""
    if cause.startswith("session lost"):
        print(f"handoff connect: {cause}", file=sys.stderr)
        return 1
    return 0


def _connect(args: argparse.Namespace) -> int:
    return anyio.run(_chat, args)
