"""``handoff simulate liveagent`` and ``handoff connect liveagent``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import anyio

from handoff_adapters.liveagent.client import LiveAgentBackend, LiveAgentConfig
from handoff_adapters.terminal import (
    TerminalChannel,
    add_connect_options,
    chat_with_agent,
    key_values,
    stdin_lines,
)

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
    connect.add_argument("--api-version", type=int, default=47)
    add_connect_options(connect)
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


async def _chat(args: argparse.Namespace) -> int:
    config = LiveAgentConfig(
        endpoint=args.endpoint,
        organization_id=args.org_id,
        deployment_id=args.deployment_id,
        button_id=args.button_id,
        visitor_name=args.visitor_name,
        api_version=args.api_version,
    )
    prechat = key_values(args.prechat, option="--prechat")
    channel = TerminalChannel(sys.stdout, json=args.json)
    async with LiveAgentBackend(config) as backend:
        return await chat_with_agent(
            backend,
            channel,
            stdin_lines(),
            language=args.lang,
            user_name=args.visitor_name,
            prechat=prechat,
            queue_timeout=args.queue_timeout,
        )


def _connect(args: argparse.Namespace) -> int:
    return anyio.run(_chat, args)
