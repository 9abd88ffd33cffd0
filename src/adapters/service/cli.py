"""``handoff serve`` and ``handoff chat``.

* ``handoff serve --config handoff.toml``: the ASGI service on hypercorn (Kore webhooks, channel
  API, ``/healthz``, ``/readyz``, ``/metrics``).
* ``handoff chat --config handoff.toml [--json]``: the whole pipeline from the terminal: you are
  the user, the configured bot answers, and on escalation the configured agent backend takes over.
  ``--json`` prints one JSON object per delivery (for scripts). ``/quit`` or end of input leaves.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any, TextIO

import anyio

from handoff_adapters.terminal import PlainChannel, stdin_lines

__all__ = ["TerminalChannel", "register"]


def register(commands: Any) -> None:
    serve = commands.top.add_parser("serve", help="run the handoff service (HTTP)")
    serve.add_argument("--config", required=True, help="the handoff.toml file")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(handler=_serve)

    chat = commands.top.add_parser(
        "chat", help="be the user in the terminal: the configured bot, then an agent"
    )
    chat.add_argument("--config", required=True, help="the handoff.toml file")
    chat.add_argument("--json", action="store_true", help="print deliveries as JSON lines")
    chat.set_defaults(handler=_chat)


def _load(path: str) -> Any:
    from handoff_adapters.service.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"handoff: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from handoff_adapters._serve import serve_forever
    from handoff_adapters.service.app import HandoffService
    from handoff_adapters.service.config import ConfigError

    config = _load(args.config)
    if config is None:
        return 2
    try:
        service = HandoffService(config)
    except ConfigError as exc:
        print(f"handoff: {exc}", file=sys.stderr)
        return 2
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    print(f"handoff serve: http://{host}:{port} ({service!r})", flush=True)
    anyio.run(serve_forever, service.app, host, port)
    return 0


class TerminalChannel(PlainChannel):
    """``handoff chat``'s channel: :class:`~handoff_adapters.terminal.PlainChannel` (``bot: …``,
    ``Ada: …``, ``* system text``; or JSON lines), under the keywords this module always took."""

    def __init__(self, *, as_json: bool = False, out: TextIO | None = None) -> None:
        super().__init__(out, json=as_json)

    @property
    def as_json(self) -> bool:
        return self.json


async def run_chat(
    config: Any,
    *,
    lines: AsyncGenerator[str, None],
    channel: TerminalChannel,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Drive one terminal conversation: ``lines`` is an async iterator of what the user types."""
    from handoff_adapters.service.app import HandoffService

    service = HandoffService(config, environ=environ, extra_channels={"terminal": channel})
    if service.bot.kore is not None:
        raise SystemExit(
            "handoff chat: a Kore bot answers through the Kore platform; use `handoff demo --bot "
            "kore` or `handoff serve` with the platform (or its simulator)"
        )
    conversation_id = f"terminal:{uuid.uuid4().hex[:12]}"
    async with service.lifespan(), aclosing(lines) as typed:
        async for line in typed:
            text = line.rstrip("\r\n")
            if text.strip() in ("/quit", "/exit"):
                break
            if text.strip():
                await service.runtime.user_said(conversation_id, text)
        await service.runtime.user_left(conversation_id)


def _chat(args: argparse.Namespace) -> int:
    from handoff_adapters.service.config import ConfigError

    config = _load(args.config)
    if config is None:
        return 2
    channel = TerminalChannel(as_json=args.json)
    if not args.json:
        print("You are the user. Type a message; /quit to leave.", flush=True)
    try:
        anyio.run(lambda: run_chat(config, lines=stdin_lines(), channel=channel))
    except ConfigError as exc:
        print(f"handoff: {exc}", file=sys.stderr)
        return 2
    return 0
