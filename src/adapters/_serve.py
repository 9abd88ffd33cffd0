"""Serve an ASGI app with hypercorn on asyncio or trio (whichever is running), on a loopback port.

Used by the simulators (``handoff simulate …``), ``handoff serve`` and the tests. The listening
socket is bound here first (port 0 picks a free port) and handed to hypercorn as ``fd://``, so the
URL is known before the server starts and no other process can take the port in between.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sniffio
from hypercorn.config import Config

__all__ = ["bind_socket", "serve", "serve_forever"]


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _config(sock: socket.socket, **options: Any) -> Config:
    config = Config()
    # hypercorn takes ownership of the descriptor it is given (and closes it): give it a copy.
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    config.graceful_timeout = 1
    for name, value in options.items():
        setattr(config, name, value)
    return config


async def _run(app: Any, config: Config, shutdown: anyio.Event) -> None:
    library = sniffio.current_async_library()
    if library == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(app, config, shutdown_trigger=shutdown.wait)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(app, config, shutdown_trigger=shutdown.wait)


@asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> AsyncIterator[str]:
    """Run ``app`` in the background while the block runs; yields its base URL."""
    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    shutdown = anyio.Event()
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_run, app, _config(sock, **options), shutdown)
            try:
                yield f"http://{url_host}:{bound_port}"
            finally:
                shutdown.set()
    finally:
        sock.close()


async def serve_forever(app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
    sock = bind_socket(host, port)
    try:
        await _run(app, _config(sock, **options), anyio.Event())
    finally:
        sock.close()
