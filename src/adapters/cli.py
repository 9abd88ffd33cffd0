"""The ``handoff`` command.

Each adapter package contributes its own subcommands from a ``cli`` module with a
``register(commands)`` function (see :class:`Commands`); this file only knows their names, so a new
backend adds one line to :data:`PLUGINS` and touches nothing else here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

__all__ = ["Commands", "main"]

#: Modules that register subcommands. Missing ones are skipped (a partial install still works).
PLUGINS: tuple[str, ...] = (
    "handoff_adapters.diagrams_cli",
    "handoff_adapters.liveagent.cli",
    "handoff_adapters.miaw.cli",
    "handoff_adapters.einstein.cli",
    "handoff_adapters.kore.cli",
    "handoff_adapters.service.cli",
    "handoff_adapters.demo",
)

Handler = Callable[[argparse.Namespace], int]


class Commands:
    """The parser tree handed to plugins.

    * ``top`` — top-level commands (``handoff demo``, ``handoff serve``…)
    * ``simulate`` — ``handoff simulate <name>``
    * ``connect`` — ``handoff connect <name>``

    Every command sets ``handler`` (``parser.set_defaults(handler=...)``): a function of the parsed
    arguments returning the exit status.
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.top = parser.add_subparsers(dest="command", metavar="COMMAND")
        simulate = self.top.add_parser(
            "simulate", help="run a simulator of a Salesforce or bot service on loopback"
        )
        self.simulate = simulate.add_subparsers(dest="simulator", metavar="SERVICE", required=True)
        connect = self.top.add_parser(
            "connect", help="chat from the terminal with a live agent, as the end user"
        )
        self.connect = connect.add_subparsers(dest="backend", metavar="BACKEND", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handoff",
        description="Hand a chatbot conversation to a human agent and back.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    commands = Commands(parser)
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not built or not installed: its commands are simply absent
            raise
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
