"""BotKit JWTs (``protocols/kore.md`` §6): the inbound ``token`` header and the outbound ``auth``.

Inbound, stricter than BotKit: the algorithm is the configured one only (HS256 or HS512; Kore does
not support RS* for BotKit), ``exp`` is required and enforced, and ``appId`` must be the app's
Client ID. The legacy ``apikey`` header (the raw secret) is not accepted.

Outbound: ``{"appId": <Client ID>, "exp": now + 60}`` signed with the Client Secret, as BotKit does.

Callback hosts: the outbound JWT is sent to the URLs a webhook carries, so an app only accepts
webhooks whose URLs point at its platform: ``callback_hosts`` if given, else the host of
``platform_url``, else loopback (the simulator).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs
import httpx
import jwt

__all__ = ["ALGORITHMS", "LOOPBACK_HOSTS", "AuthError", "KoreApp", "KoreApps", "url_host"]

ALGORITHMS: Final = ("HS256", "HS512")
#: Seconds of clock skew tolerated when checking ``exp``.
LEEWAY: Final = 5.0
#: The callback hosts of an app configured with neither ``callback_hosts`` nor ``platform_url``.
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "::1")


class AuthError(Exception):
    """A webhook's JWT is missing, malformed, expired, or for another app."""


def _algorithm(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ALGORITHMS:
        raise ValueError(
            f"{attribute.name}: expected one of {', '.join(ALGORITHMS)}, got {value!r}"
        )


def url_host(url: str) -> str | None:
    """The host of an http(s) URL, lower-cased; ``None`` if it is not one."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    return parsed.host.lower().rstrip(".")


def _hosts(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple | frozenset | set):
        raise TypeError(f"callback_hosts: expected a list of host names, got {value!r}")
    hosts = []
    for host in value:
        if not isinstance(host, str) or not host.strip(".* "):
            raise ValueError(f"callback_hosts: expected non-empty host names, got {host!r}")
        hosts.append(host.strip().lower().rstrip("."))
    return tuple(hosts)


def _platform_url(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and url_host(value) is None:
        raise ValueError(f"{attribute.name}: expected an http(s) URL, got {value!r}")


@attrs.frozen(kw_only=True)
class KoreApp:
    """One BotKit JWT app: its Client ID (``cs-…``) and Client Secret."""

    client_id: str
    client_secret: str = attrs.field(repr=False)
    algorithm: str = attrs.field(default="HS256", validator=_algorithm)
    #: Lifetime of the outbound ``auth`` JWT (BotKit's default: 60 s).
    jwt_expiry: float = 60.0
    #: The platform this app's bots live on (e.g. ``https://bots.kore.ai``).
    platform_url: str | None = attrs.field(default=None, validator=_platform_url)
    #: Hosts webhook callback URLs may point at; ``"*.example.com"`` allows its subdomains.
    callback_hosts: tuple[str, ...] | None = attrs.field(default=None, converter=_hosts)

    @property
    def allowed_callback_hosts(self) -> tuple[str, ...]:
        if self.callback_hosts is not None:
            return self.callback_hosts
        if self.platform_url is not None:
            host = url_host(self.platform_url)
            if host is not None:
                return (host,)
        return LOOPBACK_HOSTS

    def allows_callback(self, url: str) -> bool:
        """Whether ``url`` is an http(s) URL on one of the allowed hosts (any port)."""
        host = url_host(url)
        if host is None:
            return False
        for allowed in self.allowed_callback_hosts:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]):
                    return True
            elif host == allowed:
                return True
        return False

    def sign(self, now: float) -> str:
        claims = {"appId": self.client_id, "exp": int(now + self.jwt_expiry)}
        return jwt.encode(claims, self.client_secret, algorithm=self.algorithm)

    def verify(self, token: str, now: float) -> None:
        try:
            claims = jwt.decode(
                token,
                self.client_secret,
                algorithms=[self.algorithm],
                options={"require": ["exp"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        expires = claims.get("exp")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise AuthError("invalid token: exp is not a number")
        if expires + LEEWAY < now:
            raise AuthError("invalid token: expired")
        if claims.get("appId") != self.client_id:
            raise AuthError("invalid token: appId does not match this app")


class KoreApps:
    """The apps by bot id (``st-…``); the key ``"*"`` serves every other bot."""

    def __init__(
        self, apps: Mapping[str, KoreApp], *, clock: Callable[[], float] = time.time
    ) -> None:
        if not apps:
            raise ValueError("at least one Kore app is needed")
        self._apps = dict(apps)
        self.clock = clock

    def for_bot(self, bot_id: str) -> KoreApp | None:
        return self._apps.get(bot_id) or self._apps.get("*")

    def verify(self, bot_id: str, token: str | None) -> None:
        app = self.for_bot(bot_id)
        if app is None:
            raise AuthError(f"no app is configured for bot {bot_id!r}")
        if not token:
            raise AuthError("the token header is missing")
        app.verify(token, self.clock())

    def sign(self, bot_id: str) -> str:
        app = self.for_bot(bot_id)
        if app is None:
            raise AuthError(f"no app is configured for bot {bot_id!r}")
        return app.sign(self.clock())

    def __repr__(self) -> str:
        return f"KoreApps({sorted(self._apps)!r})"
