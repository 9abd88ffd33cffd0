"""Build bots, agent backends and the session store from their config tables, by ``type``.

Each entry structures its table with its own options class (so errors name the exact key) and
builds the port. Adding a backend means adding one entry here (or calling
:func:`register_backend` from your own code before building the service).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from handoff_adapters._http import HttpClients
from handoff_adapters.service.config import ConfigError, secret_from_env, structure
from handoff_core.errors import HandoffError
from handoff_core.events import EscalationTarget
from handoff_core.ports import AgentBackend, BotPlatform, SessionStore

__all__ = [
    "BACKENDS",
    "BOTS",
    "STORES",
    "BuildContext",
    "BuiltBot",
    "build_backend",
    "build_bot",
    "build_store",
    "register_backend",
    "register_bot",
    "register_store",
    "parse_target",
]


@attrs.frozen(kw_only=True)
class BuildContext:
    environ: Mapping[str, str]
    http: HttpClients
    clock: Callable[[], float] = time.time


@attrs.frozen(kw_only=True)
class BuiltBot:
    """A bot platform, and the Kore endpoint when the bot is Kore (it is the channel too)."""

    platform: BotPlatform
    kore: Any = None  # KoreBotKit (typed loosely: Kore is imported only when configured)
    kore_prefix: str = ""


BotFactory = Callable[[dict[str, Any], str, BuildContext], BuiltBot]
BackendFactory = Callable[[str, dict[str, Any], str, BuildContext], AgentBackend]

StoreFactory = Callable[[dict[str, Any], str, BuildContext], SessionStore]

BOTS: dict[str, BotFactory] = {}
BACKENDS: dict[str, BackendFactory] = {}
STORES: dict[str, StoreFactory] = {}


def register_bot(kind: str, factory: BotFactory) -> None:
    BOTS[kind] = factory


def register_backend(kind: str, factory: BackendFactory) -> None:
    BACKENDS[kind] = factory


def register_store(kind: str, factory: StoreFactory) -> None:
    STORES[kind] = factory


def build_bot(table: dict[str, Any], context: BuildContext) -> BuiltBot:
    kind = table.get("type")
    if kind not in BOTS:
        raise ConfigError(f"bot.type: unknown bot type {kind!r}; known: {', '.join(sorted(BOTS))}")
    options = {k: v for k, v in table.items() if k != "type"}
    return BOTS[kind](options, "bot", context)


def build_backend(name: str, table: dict[str, Any], context: BuildContext) -> AgentBackend:
    kind = table.get("type")
    path = f"backends.{name}"
    if kind not in BACKENDS:
        raise ConfigError(
            f"{path}.type: unknown backend type {kind!r}; known: {', '.join(sorted(BACKENDS))}"
        )
    options = {k: v for k, v in table.items() if k != "type"}
    return BACKENDS[kind](name, options, path, context)


def build_store(table: dict[str, Any], context: BuildContext) -> SessionStore:
    """The ``[store]`` table's store (no table: in memory). Nothing is opened yet."""
    kind = table.get("type", "memory")
    if kind not in STORES:
        raise ConfigError(
            f"store.type: unknown store type {kind!r}; known: {', '.join(sorted(STORES))}"
        )
    options = {k: v for k, v in table.items() if k != "type"}
    return STORES[kind](options, "store", context)


def parse_target(text: str, key: str) -> EscalationTarget:
    kind, _, value = text.partition(":")
    if not kind or not value:
        raise ConfigError(f'{key}: expected "kind:value" (e.g. "queue:support"), got {text!r}')
    return EscalationTarget(kind=kind, value=value)


# -- bots -----------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EchoOptions:
    transfer_phrase: str = "transfer me"
    targets: list[str] = attrs.field(factory=list)


def _echo(options: dict[str, Any], path: str, context: BuildContext) -> BuiltBot:
    from handoff_adapters.service.bots import EchoBot

    parsed = structure(options, EchoOptions, path)
    targets = tuple(parse_target(t, f"{path}.targets[{i}]") for i, t in enumerate(parsed.targets))
    bot = EchoBot(transfer_phrase=parsed.transfer_phrase, targets=targets, clock=context.clock)
    return BuiltBot(platform=bot)


@attrs.frozen(kw_only=True)
class KoreAppOptions:
    client_id: str
    client_secret_env: str
    #: The bot (``st-…``) this app signs for; ``"*"``: every bot.
    bot_id: str = "*"
    algorithm: str = "HS256"
    jwt_expiry: float = 60.0
    #: The Kore platform of this app's bots; its host is where webhook callback URLs may point.
    platform_url: str = "https://bots.kore.ai"
    #: Instead: the allowed callback hosts (``"*.example.com"`` allows its subdomains).
    callback_hosts: list[str] | None = None


@attrs.frozen(kw_only=True)
class KoreOptions:
    apps: list[KoreAppOptions]
    #: BotKit's ``apiPrefix`` (the routes are ``{prefix}/sdk/bots/…``).
    prefix: str = ""


def _kore(options: dict[str, Any], path: str, context: BuildContext) -> BuiltBot:
    from handoff_adapters.kore import KoreApp, KoreApps, KoreBotKit
    from handoff_adapters.kore.auth import url_host

    parsed = structure(options, KoreOptions, path)
    if not parsed.apps:
        raise ConfigError(f"{path}.apps: expected at least one [[{path}.apps]] table")
    apps: dict[str, KoreApp] = {}
    for index, app in enumerate(parsed.apps):
        key = f"{path}.apps[{index}]"
        if app.algorithm not in ("HS256", "HS512"):
            raise ConfigError(
                f'{key}.algorithm: expected "HS256" or "HS512", got {app.algorithm!r}'
            )
        if url_host(app.platform_url) is None:
            raise ConfigError(
                f"{key}.platform_url: expected an http(s) URL, got {app.platform_url!r}"
            )
        for index_host, host in enumerate(app.callback_hosts or ()):
            # A host only: no scheme, path or port (one colon); IPv6 literals have several.
            if not host.strip(".* ") or "/" in host or " " in host or host.count(":") == 1:
                raise ConfigError(
                    f"{key}.callback_hosts[{index_host}]: expected a host name "
                    f'(e.g. "bots.kore.ai"), got {host!r}'
                )
        if app.callback_hosts is not None and not app.callback_hosts:
            raise ConfigError(f"{key}.callback_hosts: expected at least one host")
        secret = secret_from_env(app.client_secret_env, f"{key}.client_secret_env", context.environ)
        apps[app.bot_id] = KoreApp(
            client_id=app.client_id,
            client_secret=secret.value,
            algorithm=app.algorithm,
            jwt_expiry=app.jwt_expiry,
            platform_url=app.platform_url,
            callback_hosts=app.callback_hosts,
        )
    botkit = KoreBotKit(KoreApps(apps, clock=context.clock), http=context.http)
    return BuiltBot(platform=botkit, kore=botkit, kore_prefix=parsed.prefix)


register_bot("echo", _echo)
register_bot("kore", _kore)


# -- agent backends -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MiawOptions:
    url: str
    org_id: str
    developer_name: str
    capabilities_version: str = "1"
    platform: str = "Web"
    app_name: str = "handoff"
    language: str | None = None
    heartbeat_timeout: float = 90.0
    reconnect_attempts: int = 10


def _miaw(name: str, options: dict[str, Any], path: str, context: BuildContext) -> AgentBackend:
    from handoff_adapters.miaw import MiawBackend

    parsed = structure(options, MiawOptions, path)
    return MiawBackend(
        parsed.url,
        parsed.org_id,
        parsed.developer_name,
        clients=context.http,
        name=name,
        language=parsed.language,
        capabilities_version=parsed.capabilities_version,
        platform=parsed.platform,
        app_name=parsed.app_name,
        heartbeat_timeout=parsed.heartbeat_timeout,
        reconnect_attempts=parsed.reconnect_attempts,
        clock=context.clock,
    )


register_backend("miaw", _miaw)


@attrs.frozen(kw_only=True)
class EinsteinOptions:
    runtime_url: str
    org_id: str
    bot_id: str
    force_endpoint: str
    api_version: str = "5.3.0"
    integration_name: str | None = None
    include_variables: bool = True
    #: A ready access token (tests, the simulator): the variable that holds it.
    access_token_env: str | None = None
    #: The JWT bearer flow: the connected app's consumer key, the integration user, and the
    #: variable holding the PEM private key.
    login_url: str | None = None
    consumer_key: str | None = None
    username: str | None = None
    private_key_env: str | None = None


def _einstein(options: dict[str, Any], path: str, context: BuildContext) -> BuiltBot:
    from handoff_adapters.einstein.auth import JwtBearerAuth, StaticToken, TokenProvider
    from handoff_adapters.einstein.client import EinsteinBot, EinsteinConfig

    parsed = structure(options, EinsteinOptions, path)
    auth: TokenProvider
    if parsed.access_token_env is not None:
        token = secret_from_env(
            parsed.access_token_env, f"{path}.access_token_env", context.environ
        )
        auth = StaticToken(token.value)
    else:
        login_url, consumer_key = parsed.login_url, parsed.consumer_key
        username, key_env = parsed.username, parsed.private_key_env
        if login_url is None or consumer_key is None or username is None or key_env is None:
            missing = next(
                name
                for name in ("login_url", "consumer_key", "username", "private_key_env")
                if getattr(parsed, name) is None
            )
            raise ConfigError(
                f"{path}.{missing}: required for the JWT bearer flow "
                f"(or set {path}.access_token_env)"
            )
        key = secret_from_env(key_env, f"{path}.private_key_env", context.environ)
        auth = JwtBearerAuth(
            login_url=login_url,
            consumer_key=consumer_key,
            username=username,
            private_key=key.value,
            clock=context.clock,
        )
    try:
        config = EinsteinConfig(
            runtime_url=parsed.runtime_url,
            org_id=parsed.org_id,
            bot_id=parsed.bot_id,
            force_endpoint=parsed.force_endpoint,
            api_version=parsed.api_version,
            integration_name=parsed.integration_name,
            include_variables=parsed.include_variables,
        )
    except HandoffError as exc:  # e.g. "org_id: expected a 15- or 18-character id"
        raise ConfigError(f"{path}.{exc.message}") from None
    bot = EinsteinBot(config, auth, http=context.http, clock=context.clock)
    return BuiltBot(platform=bot)


register_bot("einstein", _einstein)


@attrs.frozen(kw_only=True)
class LiveAgentOptions:
    endpoint: str
    organization_id: str
    deployment_id: str
    button_id: str
    api_version: int = 47
    visitor_name: str = "Visitor"
    send_transcript: bool = True


def _liveagent(
    name: str, options: dict[str, Any], path: str, context: BuildContext
) -> AgentBackend:
    from handoff_adapters.liveagent.client import LiveAgentBackend, LiveAgentConfig

    parsed = structure(options, LiveAgentOptions, path)
    config = LiveAgentConfig(
        endpoint=parsed.endpoint,
        organization_id=parsed.organization_id,
        deployment_id=parsed.deployment_id,
        button_id=parsed.button_id,
        api_version=parsed.api_version,
        visitor_name=parsed.visitor_name,
        send_transcript=parsed.send_transcript,
    )
    return LiveAgentBackend(config, http=context.http, name=name)


register_backend("liveagent", _liveagent)


# -- session stores -------------------------------------------------------------------------------


def _memory_store(options: dict[str, Any], path: str, context: BuildContext) -> SessionStore:
    from handoff_core.runtime import MemoryStore

    if options:
        key = next(iter(options))
        raise ConfigError(f'{path}.{key}: not an option of type = "memory" (try type = "sqlite")')
    return MemoryStore()


@attrs.frozen(kw_only=True)
class SqliteStoreOptions:
    #: The database file (relative paths: to the working directory). Created mode 0600: it holds
    #: the adapters' session keys and tokens.
    path: str
    busy_timeout: float = 30.0
    synchronous: str = "NORMAL"


def _sqlite_store(options: dict[str, Any], path: str, context: BuildContext) -> SessionStore:
    from handoff_adapters.stores.sqlite import SqliteStore

    parsed = structure(options, SqliteStoreOptions, path)
    if not parsed.path.strip():
        raise ConfigError(f"{path}.path: expected a file path, got an empty string")
    if parsed.busy_timeout <= 0:
        raise ConfigError(f"{path}.busy_timeout: expected a positive number of seconds")
    try:
        return SqliteStore(
            Path(parsed.path).expanduser(),
            busy_timeout=parsed.busy_timeout,
            synchronous=parsed.synchronous,
            clock=context.clock,
        )
    except ValueError as exc:  # synchronous: expected one of …
        raise ConfigError(f"{path}.{exc}") from None


@attrs.frozen(kw_only=True)
class RedisStoreOptions:
    #: ``redis://host:port/db`` (``rediss://`` for TLS); no password in it (see ``password_env``).
    url: str | None = None
    #: Or the Sentinels watching the master: ``[["host", port], …]`` with ``service_name``.
    sentinels: list[tuple[str, int]] | None = None
    service_name: str | None = None
    #: The environment variable holding the Redis password (none: no password).
    password_env: str | None = None
    username: str | None = None
    prefix: str = "handoff:"
    #: Seconds after which a conversation that is no longer active expires (none: never).
    idle_ttl: float | None = None


def _redis_store(options: dict[str, Any], path: str, context: BuildContext) -> SessionStore:
    from handoff_adapters.stores.redis import RedisStore

    parsed = structure(options, RedisStoreOptions, path)
    if (parsed.url is None) == (parsed.sentinels is None):
        raise ConfigError(f"{path}: give either url or sentinels (with service_name)")
    if parsed.url is not None and not parsed.url.startswith(("redis://", "rediss://")):
        raise ConfigError(f"{path}.url: expected redis://host:port/db or rediss://…")
    if parsed.sentinels is not None:
        if not parsed.sentinels:
            raise ConfigError(f"{path}.sentinels: expected at least one [host, port]")
        if not parsed.service_name:
            raise ConfigError(f"{path}.service_name: required with sentinels")
    if parsed.idle_ttl is not None and not parsed.idle_ttl > 0:
        raise ConfigError(f"{path}.idle_ttl: expected a positive number of seconds")
    password = None
    if parsed.password_env is not None:
        password = secret_from_env(parsed.password_env, f"{path}.password_env", context.environ)
    try:
        return RedisStore(
            url=parsed.url,
            sentinels=[(host, port) for host, port in parsed.sentinels or ()],
            service_name=parsed.service_name,
            password=None if password is None else password.value,
            username=parsed.username,
            prefix=parsed.prefix,
            idle_ttl=parsed.idle_ttl,
        )
    except ValueError as exc:  # url: must not hold a password …
        raise ConfigError(f"{path}.{exc}") from None


register_store("memory", _memory_store)
register_store("sqlite", _sqlite_store)
register_store("redis", _redis_store)
