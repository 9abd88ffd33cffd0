"""``handoff simulate miaw`` and ``handoff connect miaw``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import anyio

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
        help="chat with a MIAW (Enhanced Chat) agent from the terminal",
        description="Open a MIAW conversation as a guest user and chat with the agent.",
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
    connect.add_argument("--lang", default="en", help="the conversation's language")
    connect.add_argument("--json", action="store_true", help="one JSON object per line")
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


def _routing(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--routing {pair!r}: expected KEY=VALUE")
        attributes[key] = value
    return attributes


def _connect(args: argparse.Namespace) -> int:
    return anyio.run(_chat, args)


#: Where a chat with an agent ends, and the exit status for each.
_OUTCOMES = {"bot": 0, "user_ended": 0, "transfer_failed": 1}


async def _chat(args: argparse.Namespace) -> int:
    """Escalate one conversation at once, then relay stdin lines to the agent until it ends."""
    import time

    from handoff_adapters.miaw.client import MiawBackend
    from handoff_adapters.rulebot import RuleBot
    from handoff_adapters.terminal import TerminalChannel
    from handoff_core import events as ev
    from handoff_core.runtime import MemoryStore, Runtime

    routing = _routing(args.routing)
    channel = TerminalChannel(sys.stdout, json=args.json)
    conversation_id = f"connect-{int(time.time())}"
    async with MiawBackend(
        args.url, args.org_id, args.developer_name, language=args.lang
    ) as backend:
        runtime = Runtime(
            bot=RuleBot(), agents=backend, channel=channel, store=MemoryStore(serialize=True)
        )
        async with runtime.running(), anyio.create_task_group() as group:
            await runtime.start(conversation_id, language=args.lang, prechat=routing)
            await runtime.feed(
                conversation_id,
                ev.BotEscalated(
                    at=time.time(), reason=ev.EscalationReason.USER_REQUEST, prechat=routing
                ),
            )
            outcome: list[int] = []

            async def relay_stdin() -> None:
                while True:
                    line = await anyio.to_thread.run_sync(
                        sys.stdin.readline, abandon_on_cancel=True
                    )
                    if not line:  # end of input: the user closed the window
                        await runtime.user_left(conversation_id)
                        return
                    text = line.rstrip("\n")
                    if text.strip():
                        if args.json:
                            channel.user(await runtime.get(conversation_id), text)
                        await runtime.user_said(conversation_id, text)

            async def watch() -> None:
                # The store has no change notification; polling it is cheap and local.
                while True:
                    conversation = await runtime.get(conversation_id)
                    state = conversation.state.value if conversation else "bot"
                    if state in _OUTCOMES and conversation and conversation.escalations:
                        outcome.append(_OUTCOMES[state])
                        group.cancel_scope.cancel()
                        return
                    await anyio.sleep(0.1)

            group.start_soon(relay_stdin)
            group.start_soon(watch)
    return outcome[0] if outcome else 0
