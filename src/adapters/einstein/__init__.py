"""Salesforce Einstein Bots (runtime API v5.x) as a bot platform: client, auth, simulator."""

from .auth import AuthError, JwtBearerAuth, StaticToken, TokenProvider
from .client import EinsteinBot, EinsteinConfig, EinsteinError, SessionGone

__all__ = [
    "AuthError",
    "EinsteinBot",
    "EinsteinConfig",
    "EinsteinError",
    "JwtBearerAuth",
    "SessionGone",
    "StaticToken",
    "TokenProvider",
]
