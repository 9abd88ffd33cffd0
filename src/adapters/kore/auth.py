"""BotKit JWTs (``protocols/kore.md`` §6): the inbound ``token`` header and the outbound ``auth``.

Inbound, stricter than BotKit: the algorithm is the configured one only (HS256 or HS512; Kore does
not support RS* for BotKit), ``exp`` is required and enforced, and ``appId`` must be the app's
Client ID. The legacy ``apikey`` header (the raw secret) is not accepted.

Outbound: ``{"appId": <Client ID>, "exp": now + 60}`` signed with the Client Secret, as BotKit does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs
import jwt

__all__ = ["ALGORITHMS", "AuthError", "KoreApp", "KoreApps"]

ALGORITHMS: Final = ("HS256", "HS512")
#: Seconds of clock skew tolerated when checking ``exp``.
LEEWAY: Final = 5.0


class AuthError(Exception):
    """A webhook's JWT is missing, malformed, expired, or for another app."""


def _algorithm(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ALGORITHMS:
        raise ValueError(
            f"{attribute.name}: expected one of {', '.join(ALGORITHMS)}, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class KoreApp:
    """One BotKit JWT app: its Client ID (``cs-…``) and Client Secret."""

    client_id: str
    client_secret: str = attrs.field(repr=False)
    algorithm: str = attrs.field(default="HS256", validator=_algorithm)
    #: Lifetime of the outbound ``auth`` JWT (BotKit's default: 60 s).
    jwt_expiry: float = 60.0

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
