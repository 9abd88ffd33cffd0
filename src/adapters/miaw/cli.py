"""``handoff simulate miaw`` and ``handoff connect miaw``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import anyio

from handoff_adapters.terminal import add_connect_options

if TYPE_CHECKING:
    from handoff_adapters.cli import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    simulate = commands.simulate.add_parser(
        "miaw",
        help="a Salesforce MIAW (Enhanced Chat) deployment with remote-controlled agents",
        description=(
            "Serve the MIAW custom-client API (REST + SSE) on loopback. Agents are driven over "
            "HTTP: POST /_control/conversations/{id}/{join|say|typing|queue|transfer|end|reject} "
            'with a JSON body ({"name": …}, {"text": …}, {"typing": true}, '
            '{"position": 2}); GET /_control/conversations lists them; POST /_control/faults '
            'sets faults ({"drop_every": 3, "replay": true, "event_delay": 0.2, '
            '"fail_next": [{"kind": "message", "status": 429, "retry_after": 1}], '
            '"expire_tokens": true, "drop_streams": true}).'
        ),
    )
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8082)
    simulate.add_argument("--org-id", default="00DSIM000000001")
    simulate.add_argument("--developer-name", default="handoff_sim")
    simulate.add_argument(
        "--agent", default="Jane Agent", help="the agent who joins every conversation"
    )
    simulate.add_argument(
        "--no-auto-join", action="store_true", help="agents join only when told to (/_control)"
    )
    simulate.add_argument("--join-delay", type=float, default=2.0, metavar="SECONDS")
    simulate.add_argument("--queue-position", type=int, default=None)
    simulate.add_argument("--estimated-wait", type=float, default=None, metavar="SECONDS")
    simulate.add_argument(
        "--routing-failure", default=None, metavar="REASON", help="every routing fails"
    )
    simulate.add_argument(
        "--no-echo", action="store_true", help='agents don\'t answer "You said: …"'
    )
    simulate.add_argument(
        "--greeting",
        default="Hi, I'm {agent}. How can I help?",
        help="what a joining agent says ({agent}: their name; empty: nothing)",
    )
    simulate.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS")
    simulate.add_argument("--ping-interval", type=float, default=15.0, metavar="SECONDS")
    simulate.add_argument("--drop-every", type=int, default=None, metavar="N")
    simulate.add_argument("--replay", action="store_true", help="replay after Last-Event-Id")
    simulate.add_argument("--event-delay", type=float, default=0.0, metavar="SECONDS")
    simulate.set_defaults(handler=_simulate)

    connect = commands.connect.add_parser(
        "miaw",
        help="chat with a MIAW (Enhanced Chat) agent (or its simulator) as the end user",
        description="Opens a conversation as a guest user. Lines from stdin go to the agent; EOF "
        "or the end keyword ends the chat. Exit status 0 on a normal end, 1 with a one-line "
        "reason if the transfer fails or the session is lost.",
    )
    connect.add_argument("--url", required=True, help="the deployment's SCRT URL")
    connect.add_argument("--org-id", required=True)
    connect.add_argument("--developer-name", required=True, help="the deployment's API name")
    connect.add_argument(
        "--routing",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a routing attribute (pre-chat field); repeatable",
    )
    connect.add_argument("--user-name", default=None, help="the end user's name")
    add_connect_options(connect)
    connect.set_defaults(handler=_connect)


def _simulate(args: argparse.Namespace) -> int:
    from handoff_adapters._serve import serve_forever
    from handoff_adapters.miaw.simulator import MiawSimulator

    simulator = MiawSimulator(
        org_id=args.org_id,
        developer_name=args.developer_name,
        auto_join=None if args.no_auto_join else args.agent,
        join_delay=args.join_delay,
        queue_position=args.queue_position,
        estimated_wait=args.estimated_wait,
        routing_failure=args.routing_failure,
        echo=not args.no_echo,
        greeting=args.greeting or None,
        token_ttl=args.token_ttl,
        ping_interval=args.ping_interval,
    )
    simulator.faults.drop_every = args.drop_every
    simulator.faults.replay = args.replay
    simulator.faults.event_delay = args.event_delay
    print(
        f"MIAW simulator on http://{args.host}:{args.port}  "
        f"(--org-id {simulator.org_id} --developer-name {simulator.developer_name})",
        file=sys.stderr,
        flush=True,
    )
    anyio.run(serve_forever, simulator.app, args.host, args.port)
    return 0


def _connect(args: argparse.Namespace) -> int:
    return anyio.run(_chat, args)


async def _chat(args: argparse.Namespace) -> int:
    """Escalate at once, relay stdin lines to the agent, stop when the agent session is over.

    The same behaviour and output contract as ``handoff connect liveagent`` (both are
    :func:`handoff_adapters.terminal.chat_with_agent`): EOF ends the chat like the end keyword;
    exit status 0 on a normal end, 1 with a one-line reason on stderr when the transfer fails or
    the session is lost.
    """
    from handoff_adapters.miaw.client import MiawBackend
    from handoff_adapters.terminal import TerminalChannel, chat_with_agent, key_values, stdin_lines

    routing = key_values(args.routing, option="--routing")
    channel = TerminalChannel(sys.stdout, json=args.json)
    async with MiawBackend(args.url, args.org_id, args.developer_name) as backend:
        return await chat_with_agent(
            backend,
            channel,
            stdin_lines(),
            language=args.lang,
            user_name=args.user_name,
            prechat=routing,
            queue_timeout=args.queue_timeout,
        )
