"""``handoff.toml``: one TOML file, structured by cattrs into attrs classes, checked strictly.

Errors name the exact key and what was expected (``routing.rules[1].backend: unknown backend
'x'; configured: miaw, liveagent``). Unknown keys are errors too: a typo must not silently fall
back to a default. Secrets never appear in the file: it names the environment variable that holds
each one (``client_secret_env = "KORE_CLIENT_SECRET"``), read when the service is built, and kept
in :class:`Secret`, whose ``repr`` hides the value.

Bot and backend tables are type-specific: ``type`` picks the entry of the registry
(:mod:`handoff_adapters.service.registry`), which structures the rest of the table with its own
options class, so their errors are named the same way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import cattrs

from handoff_core.errors import HandoffError
from handoff_core.policy import Policy

__all__ = [
    "ApiChannelConfig",
    "Config",
    "ConfigError",
    "PolicyConfig",
    "RouteRule",
    "RoutingConfig",
    "Secret",
    "ServerConfig",
    "load_config",
    "parse_config",
    "secret_from_env",
    "structure",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key."""


@attrs.frozen
class Secret:
    """A secret value; ``repr``/``str`` never show it."""

    value: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def secret_from_env(variable: str, key: str, environ: Mapping[str, str]) -> Secret:
    value = environ.get(variable)
    if not value:
        raise ConfigError(f"{key}: the environment variable {variable} is not set")
    return Secret(value)


@attrs.frozen(kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Prefix of every route (BotKit's ``apiPrefix`` is added after it for the Kore routes).
    prefix: str = ""
    #: Bodies above this are refused with 413.
    max_body: int = 1024 * 1024
    #: This replica's name on the outbox leases it takes (default: the host name). Keep it stable
    #: across restarts and unique among replicas sharing a store: a restarted replica then
    #: finishes its own interrupted steps at once instead of waiting for their leases to expire.
    instance_id: str | None = None


@attrs.frozen(kw_only=True)
class PolicyConfig:
    """The subset of :class:`handoff_core.policy.Policy` a deployment sets in the file.

    TOML has no null: ``0`` turns a trigger or timeout off (``max_bot_errors``,
    ``max_not_understood``, ``queue_timeout``, ``idle_timeout``). ``messages`` overrides system
    messages per language (``[policy.messages.fr]``, or ``[policy.messages."*"]`` for all).
    """

    end_keyword: str | None = None
    escalation_phrases: list[str] | None = None
    phrase_match: str | None = None
    max_bot_errors: int | None = None
    max_not_understood: int | None = None
    check_availability: bool | None = None
    queue_timeout: float | None = None
    idle_timeout: float | None = None
    messages: dict[str, dict[str, str]] | None = None

    def build(self) -> Policy:
        given: dict[str, Any] = {}
        for key, value in attrs.asdict(self).items():
            if value is None:
                continue
            if key in _ZERO_IS_OFF and value == 0 and not isinstance(value, bool):
                value = None  # "off": the core's None
            given[key] = value
        try:
            return Policy(**given)
        except HandoffError as exc:
            message = exc.message.replace("Policy.", "policy.", 1)
            if message.startswith("messages["):
                message = "policy." + message
            raise ConfigError(message) from None


_ZERO_IS_OFF = frozenset({"max_bot_errors", "max_not_understood", "queue_timeout", "idle_timeout"})


@attrs.frozen(kw_only=True)
class RouteRule:
    """Use ``backend`` for conversations of ``channel`` and/or escalations to ``target``.

    ``target`` is ``"kind:value"`` (``"queue:billing"``, ``"skill:french"``, ``"bot:…"``) or just
    ``"kind"``; a rule without ``channel`` matches every channel.
    """

    backend: str
    channel: str | None = None
    target: str | None = None


@attrs.frozen(kw_only=True)
class RoutingConfig:
    #: The backend for everything no rule matches (default: the first configured backend).
    default: str | None = None
    rules: list[RouteRule] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class ApiChannelConfig:
    """The generic channel API (for frameworks that are neither Kore nor Einstein)."""

    enabled: bool = True
    #: POST every delivery here (JSON) in addition to the SSE streams.
    webhook_url: str | None = None


@attrs.frozen(kw_only=True)
class ChannelsConfig:
    api: ApiChannelConfig = ApiChannelConfig()


@attrs.frozen(kw_only=True)
class Config:
    bot: dict[str, Any]
    backends: dict[str, dict[str, Any]]
    server: ServerConfig = ServerConfig()
    policy: PolicyConfig = PolicyConfig()
    routing: RoutingConfig = RoutingConfig()
    channels: ChannelsConfig = ChannelsConfig()
    #: Where conversations live: ``type = "memory"`` (the default: lost on restart) or
    #: ``"sqlite"`` with ``path`` (see :mod:`handoff_adapters.service.registry`).
    store: dict[str, Any] = attrs.field(factory=lambda: {"type": "memory"})

    def default_backend(self) -> str:
        return self.routing.default or next(iter(self.backends))


# -- the strict converter -------------------------------------------------------------------------


def _strict(kind: type, name: str) -> Any:
    def structure(value: Any, _: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {name}, got a boolean")
        if not isinstance(value, kind):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return structure


def _number(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _table(value: Any, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a table, got {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "a boolean"))
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_func(lambda t: t == dict[str, Any], _table)

    def tables(value: Any, _: type) -> dict[str, dict[str, Any]]:
        if not isinstance(value, dict):
            raise TypeError(f"expected a table, got {type(value).__name__}")
        for name, item in value.items():
            if not isinstance(item, dict):
                raise TypeError(f"expected [{name}] to be a table, got {type(item).__name__}")
        return value

    converter.register_structure_hook_func(lambda t: t == dict[str, dict[str, Any]], tables)

    def lists(value: Any, target: Any) -> list[Any]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        (item_type,) = target.__args__
        found, errors = [], []
        for index, item in enumerate(value):
            try:
                found.append(converter.structure(item, item_type))
            except Exception as exc:
                note = cattrs.errors.IterableValidationNote(f"@ index {index}", index, item_type)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise cattrs.errors.IterableValidationError(
                "While structuring an array", errors, target
            )
        return found

    converter.register_structure_hook_func(lambda t: getattr(t, "__origin__", None) is list, lists)

    def attrs_tables(cls: type) -> Any:
        inner: Callable[[Any, Any], Any] = cattrs.gen.make_dict_structure_fn(
            cls, converter, _cattrs_forbid_extra_keys=True
        )

        def structure(value: Any, target: type) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected a table, got {type(value).__name__}")
            return inner(value, target)

        return structure

    converter.register_structure_hook_factory(attrs.has, attrs_tables)
    return converter


CONVERTER: Final = _make_converter()


def structure(data: Any, cls: type[T], path: str) -> T:
    """Structure ``data`` into ``cls`` or raise :class:`ConfigError` naming ``path.key``."""
    try:
        return CONVERTER.structure(data, cls)
    except Exception as exc:
        raise ConfigError(_describe(exc, path)) from None


def _describe(exc: Exception, path: str) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, path="$")
    else:
        messages = [str(exc)]
    first = messages[0] if messages else str(exc)
    what, _, where = first.rpartition(" @ ")
    if not _:
        return f"{path or 'config'}: {first}"
    key = where.removeprefix("$").removeprefix(".")
    full = ".".join(part for part in (path, key) if part).replace(".[", "[")
    what = what.replace("invalid value for type, ", "")
    if what.startswith("extra fields found"):
        what = "unknown key(s) " + what.removeprefix("extra fields found").strip()
    return f"{full or 'config'}: {what}"


def parse_config(data: Mapping[str, Any]) -> Config:
    config = structure(dict(data), Config, "")
    if not config.backends:
        raise ConfigError("backends: expected at least one [backends.<name>] table")
    for name, table in config.backends.items():
        if not isinstance(table.get("type"), str):
            raise ConfigError(f'backends.{name}.type: expected a string (e.g. "miaw")')
    if not isinstance(config.store.get("type", "memory"), str):
        raise ConfigError('store.type: expected a string ("memory", "sqlite" or "redis")')
    if config.server.instance_id is not None and not config.server.instance_id.strip():
        raise ConfigError("server.instance_id: expected a non-empty string")
    if not isinstance(config.bot.get("type"), str):
        raise ConfigError('bot.type: expected a string (e.g. "kore", "einstein", "echo")')
    known = ", ".join(config.backends)
    if config.routing.default is not None and config.routing.default not in config.backends:
        raise ConfigError(
            f"routing.default: unknown backend {config.routing.default!r}; configured: {known}"
        )
    for index, rule in enumerate(config.routing.rules):
        if rule.backend not in config.backends:
            raise ConfigError(
                f"routing.rules[{index}].backend: unknown backend {rule.backend!r}; "
                f"configured: {known}"
            )
    config.policy.build()  # so policy errors surface at load time
    return config


def load_config(path: str | Path) -> Config:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data)
