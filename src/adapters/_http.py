"""Shared HTTP clients for agent backends and bot platforms.

Measured on a 2-core machine (see ``../shared/design.md``): one ``httpx.AsyncClient`` for thousands
of long-lived requests collapses, because its pool rescans every connection on each request start
and finish; one client per conversation works but costs a TLS context each. So long-lived requests
(long polls, SSE streams) are spread over a bounded number of *shards* that share one SSL context,
keyed by conversation, and short requests (POSTs) go through a separate small client whose pool
stays short.
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Callable

import httpx

__all__ = ["HttpClients"]

ClientFactory = Callable[..., httpx.AsyncClient]


class HttpClients:
    """A bounded set of ``httpx.AsyncClient`` s: ``shards`` for streams, one for short requests.

    ``transport`` (e.g. ``httpx.MockTransport``) is passed to every client, for tests. Clients are
    created lazily, so an idle pool costs nothing.
    """

    def __init__(
        self,
        *,
        shards: int = 32,
        short_connections: int = 16,
        timeout: httpx.Timeout | float = 30.0,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be ≥ 1")
        self._shards: list[httpx.AsyncClient | None] = [None] * shards
        self._short: httpx.AsyncClient | None = None
        self._short_connections = short_connections
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        # One SSL context for every client: building one costs ~1 ms and tens of KiB.
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context() if verify is True else verify
        )
        self._transport = transport
        self._headers = headers or {}

    def _make(self, connections: int | None) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            timeout=self._timeout,
            verify=self._verify,
            limits=limits,
            transport=self._transport,
            headers=self._headers,
        )

    def stream(self, key: str) -> httpx.AsyncClient:
        """The client for ``key``'s long-lived requests (stable per key)."""
        index = zlib.crc32(key.encode()) % len(self._shards)
        client = self._shards[index]
        if client is None:
            client = self._shards[index] = self._make(None)
        return client

    @property
    def short(self) -> httpx.AsyncClient:
        """The client for short requests (POSTs, token minting, availability)."""
        if self._short is None:
            self._short = self._make(self._short_connections)
        return self._short

    async def aclose(self) -> None:
        clients = [c for c in self._shards if c is not None]
        if self._short is not None:
            clients.append(self._short)
        self._shards = [None] * len(self._shards)
        self._short = None
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
