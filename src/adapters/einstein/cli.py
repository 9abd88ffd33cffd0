"""``handoff simulate einstein --port N``: the Einstein Bots runtime API simulator on loopback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import cattrs

from .simulator import BILLING_BOT_ID, DEFAULT_ORG_ID, MAIN_BOT_ID, Dialog, EinsteinSimulator

if TYPE_CHECKING:
    from ..cli import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    parser = commands.simulate.add_parser(
        "einstein",
        help="the Einstein Bots runtime API v5.x (with the JWT bearer login endpoint)",
        description=(
            "Serve a simulated Einstein Bots runtime API. Point a client at "
            "http://HOST:PORT as its runtime URL and login URL. Bots: "
            f"{MAIN_BOT_ID} (menu, escalation, transfer to billing) and {BILLING_BOT_ID}."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8086)
    parser.add_argument("--org-id", default=DEFAULT_ORG_ID, help="the org id to accept")
    parser.add_argument(
        "--token",
        action="append",
        help="accept only this bearer token (repeatable) besides minted ones; default: any",
    )
    parser.add_argument(
        "--dialogs",
        type=Path,
        help='JSON file {"<botId>": {dialog}, ...} replacing the built-in bots',
    )
    parser.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    bots = None
    if args.dialogs is not None:
        try:
            data = json.loads(args.dialogs.read_text())
            bots = {
                bot_id: cattrs.Converter(forbid_extra_keys=True).structure(dialog, Dialog)
                for bot_id, dialog in data.items()
            }
        except (OSError, ValueError, AttributeError, cattrs.BaseValidationError) as exc:
            print(f"handoff simulate einstein: --dialogs: {exc}", file=sys.stderr)
            return 2
    simulator = EinsteinSimulator(
        org_id=args.org_id, bots=bots, tokens=set(args.token) if args.token else None
    )
    from .._serve import serve_forever

    print(
        f"Einstein Bots API simulator on http://{args.host}:{args.port} "
        f"(org {args.org_id}; bots {', '.join(simulator.bots)})",
        flush=True,
    )
    anyio.run(serve_forever, simulator.app, args.host, args.port)
    return 0
