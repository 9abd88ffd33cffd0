"""``handoff simulate kore``: run the Kore platform simulator on loopback."""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from handoff_adapters._serve import serve_forever

__all__ = ["register"]


def register(commands: object) -> None:
    simulate = getattr(commands, "simulate")  # noqa: B009 - duck-typed to avoid a cycle
    parser = simulate.add_parser("kore", help="the Kore.ai platform side of BotKit (webhooks out)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--bot-id", default="st-simulated-bot")
    parser.add_argument("--client-id", default="cs-simulated-app")
    parser.add_argument(
        "--secret-env",
        default="KORE_CLIENT_SECRET",
        help="environment variable holding the app's client secret",
    )
    parser.add_argument("--algorithm", choices=("HS256", "HS512"), default="HS256")
    parser.add_argument("--botkit-url", help="where `handoff serve` listens (settable later)")
    parser.add_argument("--transfer-phrase", default="transfer me")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from handoff_adapters.kore.simulator import KoreSimulator

    secret = os.environ.get(args.secret_env)
    if not secret:
        print(
            f"handoff simulate kore: set {args.secret_env} to the app's client secret",
            file=sys.stderr,
        )
        return 2
    simulator = KoreSimulator(
        bot_id=args.bot_id,
        client_id=args.client_id,
        client_secret=secret,
        algorithm=args.algorithm,
        botkit_url=args.botkit_url,
        transfer_phrase=args.transfer_phrase,
    )
    simulator.base_url = f"http://{args.host}:{args.port}"
    print(f"Kore platform simulator on {simulator.base_url} (bot {args.bot_id})", flush=True)
    anyio.run(serve_forever, simulator.app, args.host, args.port)
    return 0
