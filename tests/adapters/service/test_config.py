from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handoff_adapters._http import HttpClients
from handoff_adapters.service.config import ConfigError, Secret, load_config, parse_config
from handoff_adapters.service.registry import BuildContext, build_backend, build_bot

GOOD: dict[str, Any] = {
    "bot": {"type": "echo"},
    "backends": {
        "web": {"type": "miaw", "url": "https://x", "org_id": "00D", "developer_name": "d"}
    },
}


def config_with(**tables: Any) -> dict[str, Any]:
    return {**GOOD, **tables}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (config_with(server={"port": "80"}), "server.port: expected int"),
        (config_with(server={"prot": 80}), "server: unknown key(s) (prot)"),
        (config_with(server={"max_body": True}), "server.max_body: expected int"),
        (
            config_with(routing={"rules": [{"backend": "web"}, {"backend": "nope"}]}),
            "routing.rules[1].backend: unknown backend 'nope'; configured: web",
        ),
        (config_with(routing={"default": "x"}), "routing.default: unknown backend 'x'"),
        (
            config_with(routing={"rules": [{"backend": "web", "chanel": "kore"}]}),
            "routing.rules[0]: unknown key(s) (chanel)",
        ),
        (config_with(policy={"queue_timeout": -1}), "policy.queue_timeout: expected positive"),
        (config_with(policy={"end_keyword": 3}), "policy.end_keyword: expected str"),
        (
            config_with(policy={"messages": {"fr": {"agentJoined": "x"}}}),
            "policy.messages['fr']['agentJoined']: unknown message key",
        ),
        (
            config_with(policy={"messages": {"fr": {"agentJoinedMessage": "{name} est là"}}}),
            "policy.messages['fr']['agentJoinedMessage']: unknown placeholder(s) ['name']",
        ),
        (config_with(backends={}), "backends: expected at least one"),
        (config_with(backends={"web": {"url": "x"}}), "backends.web.type: expected a string"),
        (config_with(bot={}), "bot.type: expected a string"),
        ({"backends": GOOD["backends"]}, "bot: required field missing"),
    ],
)
def test_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)


def test_good_config_and_routing_defaults() -> None:
    config = parse_config(
        config_with(routing={"rules": [{"backend": "web", "channel": "kore", "target": "queue"}]})
    )
    assert config.default_backend() == "web"
    assert config.routing.rules[0].target == "queue"
    assert config.policy.build().end_keyword == "endagentchat"


def test_load_config_reports_toml_errors(tmp_path: Path) -> None:
    path = tmp_path / "handoff.toml"
    path.write_text('[bot\ntype = "echo"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


async def _build(data: dict[str, Any], environ: dict[str, str]) -> None:
    config = parse_config(data)
    async with HttpClients() as http:
        context = BuildContext(environ=environ, http=http)
        build_bot(config.bot, context)
        for name, table in config.backends.items():
            build_backend(name, table, context)


KORE_BOT = {
    "type": "kore",
    "apps": [{"client_id": "cs-1", "client_secret_env": "KORE_SECRET"}],
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tables", "environ", "message"),
    [
        (
            {"bot": KORE_BOT},
            {},
            "bot.apps[0].client_secret_env: the environment variable KORE_SECRET is not set",
        ),
        (
            {"bot": {"type": "kore", "apps": [{"client_id": "cs-1", "client_secret": "s"}]}},
            {},
            "bot.apps[0]",
        ),
        (
            {"bot": {**KORE_BOT, "apps": [{**KORE_BOT["apps"][0], "algorithm": "RS256"}]}},
            {"KORE_SECRET": "s" * 64},
            'bot.apps[0].algorithm: expected "HS256" or "HS512"',
        ),
        ({"bot": {"type": "watson"}}, {}, "bot.type: unknown bot type 'watson'"),
        (
            {"backends": {"web": {"type": "miaw", "url": "https://x", "org_id": "00D"}}},
            {},
            "backends.web.developer_name: required field missing",
        ),
        (
            {"backends": {"old": {"type": "genesys"}}},
            {},
            "backends.old.type: unknown backend type 'genesys'",
        ),
        (
            {"bot": {"type": "echo", "targets": ["queue"]}},
            {},
            'bot.targets[0]: expected "kind:value"',
        ),
        (
            {"bot": {**KORE_BOT, "apps": [{**KORE_BOT["apps"][0], "platform_url": "bots"}]}},
            {"KORE_SECRET": "s" * 64},
            "bot.apps[0].platform_url: expected an http(s) URL, got 'bots'",
        ),
        (
            {
                "bot": {
                    **KORE_BOT,
                    "apps": [{**KORE_BOT["apps"][0], "callback_hosts": ["bots.kore.ai:443"]}],
                }
            },
            {"KORE_SECRET": "s" * 64},
            "bot.apps[0].callback_hosts[0]: expected a host name",
        ),
        (
            {"bot": {**KORE_BOT, "apps": [{**KORE_BOT["apps"][0], "callback_hosts": []}]}},
            {"KORE_SECRET": "s" * 64},
            "bot.apps[0].callback_hosts: expected at least one host",
        ),
        (
            {"bot": {**KORE_BOT, "apps": [{**KORE_BOT["apps"][0], "callback_hosts": "x"}]}},
            {"KORE_SECRET": "s" * 64},
            "bot.apps[0].callback_hosts",
        ),
    ],
)
async def test_type_specific_errors_name_the_key(
    tables: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await _build(config_with(**tables), environ)
    assert message in str(caught.value)


@pytest.mark.anyio
async def test_kore_callback_hosts_default_to_the_platform_host() -> None:
    async with HttpClients() as http:
        context = BuildContext(environ={"KORE_SECRET": "s" * 64}, http=http)
        apps = [
            {**KORE_BOT["apps"][0], "bot_id": "st-default"},
            {**KORE_BOT["apps"][0], "bot_id": "st-eu", "platform_url": "https://de-bots.kore.ai"},
            {
                **KORE_BOT["apps"][0],
                "bot_id": "st-listed",
                "callback_hosts": ["bots.kore.ai", "*.kore.example"],
            },
        ]
        built = build_bot({**KORE_BOT, "apps": apps}, context)
        hosts = {
            bot: built.kore.apps.for_bot(bot).allowed_callback_hosts
            for bot in ("st-default", "st-eu", "st-listed")
        }
        await built.kore.aclose()
    assert hosts == {
        "st-default": ("bots.kore.ai",),
        "st-eu": ("de-bots.kore.ai",),
        "st-listed": ("bots.kore.ai", "*.kore.example"),
    }


def test_secrets_never_in_repr() -> None:
    secret_value = "super-secret-value-" + "z" * 40
    assert secret_value not in repr(Secret(secret_value))
    assert secret_value not in str(Secret(secret_value))
    from handoff_adapters.kore import KoreApp, KoreApps

    app = KoreApp(client_id="cs-1", client_secret=secret_value)
    assert secret_value not in repr(app)
    assert secret_value not in repr(KoreApps({"*": app}))


@pytest.mark.anyio
async def test_example_config_builds() -> None:
    from handoff_adapters.service.app import HandoffService

    example = Path(__file__).parents[3] / "examples" / "handoff.toml"
    config = load_config(example)
    assert set(config.backends) == {"web", "legacy"}
    service = HandoffService(config, environ={"KORE_CLIENT_SECRET": "s" * 64})
    async with service.http:
        assert service.bot.kore is not None
        app = service.bot.kore.apps.for_bot("st-any")
        assert app.allowed_callback_hosts == ("bots.kore.ai",)
        assert service.router.default == "web"
        assert "s" * 64 not in repr(service)
    with pytest.raises(ConfigError, match="KORE_CLIENT_SECRET is not set"):
        HandoffService(config, environ={})


def test_policy_messages_and_switches() -> None:
    config = parse_config(
        config_with(
            policy={
                "max_bot_errors": 0,
                "queue_timeout": 0,
                "idle_timeout": 600,
                "messages": {
                    "fr": {"agentJoinedMessage": "{agent} vous répond."},
                    "*": {"lookingForAgentMessage": "One moment…"},
                },
            }
        )
    )
    policy = config.policy.build()
    assert policy.max_bot_errors is None
    assert policy.queue_timeout is None
    assert policy.idle_timeout == 600
    assert policy.messages.render("agentJoinedMessage", "fr-CA", {"agent": "Ada"}) == (
        "Ada vous répond."
    )
    assert policy.messages.render("lookingForAgentMessage", "ja") == "One moment…"
