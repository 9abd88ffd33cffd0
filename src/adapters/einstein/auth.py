"""Access tokens for the Einstein Bots API: the OAuth 2.0 JWT bearer flow, or a static token.

JWT bearer (the flow Salesforce recommends for this API; username-password is not supported): an
RS256 assertion with ``iss`` = the connected app's consumer key, ``sub`` = the integration user's
username, ``aud`` = the login URL, ``exp`` = now + 3 minutes, POSTed as a form to
``{login_url}/services/oauth2/token``. Salesforce's answer carries no ``expires_in`` (the lifetime
is the org's session timeout), so the token is kept for ``token_lifetime`` (or ``expires_in`` when
present) minus ``refresh_margin``, and thrown away early when the runtime answers 401.

Secrets (the private key, the tokens) never appear in ``repr`` or in logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import anyio
import attrs
import httpx
import jwt

from handoff_core.errors import HandoffError, RemoteProtocolError

__all__ = ["AuthError", "JwtBearerAuth", "StaticToken", "TokenProvider"]

log = logging.getLogger("handoff.einstein.auth")

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class AuthError(HandoffError):
    """The login endpoint refused to mint a token (wrong key, user not pre-authorized…)."""


class TokenProvider(Protocol):
    async def token(self, client: httpx.AsyncClient) -> str:
        """A valid access token (minted or cached)."""

    def invalidate(self, token: str) -> None:
        """The runtime refused ``token`` (401): don't hand it out again."""


@attrs.define
class StaticToken:
    """A fixed access token (tests, the simulator, or a token minted elsewhere)."""

    access_token: str = attrs.field(repr=False)

    async def token(self, client: httpx.AsyncClient) -> str:
        return self.access_token

    def invalidate(self, token: str) -> None:
        # Nothing to refresh: the next call fails the same way and the caller sees the 401.
        pass


@attrs.define
class JwtBearerAuth:
    """Mints access tokens with the JWT bearer flow and caches one until shortly before expiry."""

    login_url: str
    consumer_key: str
    username: str
    private_key: str | bytes = attrs.field(repr=False)
    #: Used when the token response has no ``expires_in`` (Salesforce's usually has none).
    token_lifetime: float = 15 * 60.0
    refresh_margin: float = 60.0
    assertion_lifetime: float = 180.0
    clock: Callable[[], float] = attrs.field(default=time.time, repr=False)
    _token: str | None = attrs.field(default=None, init=False, repr=False)
    _expires_at: float = attrs.field(default=0.0, init=False, repr=False)
    _lock: anyio.Lock | None = attrs.field(default=None, init=False, repr=False)
    #: How many tokens were minted (monitoring, tests).
    minted: int = attrs.field(default=0, init=False)

    def assertion(self) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.consumer_key,
            "sub": self.username,
            "aud": self.login_url.rstrip("/"),
            "exp": now + int(self.assertion_lifetime),
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256")

    async def token(self, client: httpx.AsyncClient) -> str:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one mint for many waiting conversations
            if self._token is None or self.clock() >= self._expires_at:
                await self._mint(client)
            assert self._token is not None
            return self._token

    def invalidate(self, token: str) -> None:
        if token == self._token:
            self._token = None

    async def _mint(self, client: httpx.AsyncClient) -> None:
        url = self.login_url.rstrip("/") + "/services/oauth2/token"
        response = await client.post(
            url, data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()}
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            description = body.get("error_description") if isinstance(body, dict) else None
            raise AuthError(
                f"Einstein login refused the JWT bearer assertion for {self.username!r}: "
                f"HTTP {response.status_code} {error or ''} {description or ''}".rstrip()
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise RemoteProtocolError("Einstein login: access_token: expected a string")
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
            lifetime = self.token_lifetime
        self._token = body["access_token"]
        self._expires_at = self.clock() + max(0.0, float(lifetime) - self.refresh_margin)
        self.minted += 1
        log.info("minted an Einstein access token for %s", self.username)
