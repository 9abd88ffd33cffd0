"""Inbound webhooks: JWT checks, bad bodies → 4xx problem+json naming the field, nothing applied;
plus a Hypothesis fuzz of the bodies (never a 5xx, never a half-applied step)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from handoff_adapters._http import HttpClients
from handoff_adapters.kore import KoreApp, KoreApps, KoreBotKit, KoreWebhooks, conversation_id
from handoff_core.runtime import MemoryStore, Runtime
from tests.adapters.kore.conftest import SECRET
from tests.fakes import ScriptedAgents

pytestmark = pytest.mark.anyio

BOT = "st-11111111-2222-3333-4444-555555555555"
CLIENT_ID = "cs-test-app"
PLATFORM = f"https://platform.example/api/botsdk/stream/{BOT}"


def token(
    *, secret: str = SECRET, app_id: str = CLIENT_ID, exp: float | None = None, alg: str = "HS256"
) -> str:
    claims: dict[str, Any] = {"appId": app_id}
    claims["exp"] = int(time.time() + 60) if exp is None else int(exp)
    return jwt.encode(claims, secret, algorithm=alg)


def payload(message: str | None = "hello", user: str = "u-1") -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestId": "r-1",
        "baseUrl": PLATFORM,
        "sendUserMessageUrl": f"{PLATFORM}/sendUserMessage/r-1",
        "sendBotMessageUrl": f"{PLATFORM}/sendBotMessage/r-1",
        "context": {
            "session": {
                "UserContext": {"_id": user, "firstName": "Help", "lastName": "Docs"},
                "BotUserSession": {
                    "miawMetaInfo": {
                        "preChatInfo": {"Pincode": "500081", "City": "Hyderabad"},
                        "endChatShortHandCommand": "endagentchat",
                    },
                    "handoffTargets": [{"kind": "queue", "value": "billing"}],
                },
            }
        },
        "channel": {"channelInfos": {"from": user, "type": "rtm"}},
    }
    if message is not None:
        body["message"] = message
    return body


class Stack:
    def __init__(self, algorithm: str = "HS256") -> None:
        self.platform_calls: list[httpx.Request] = []

        def platform(request: httpx.Request) -> httpx.Response:
            self.platform_calls.append(request)
            return httpx.Response(200, json={"status": "ok"})

        self.http = HttpClients(transport=httpx.MockTransport(platform))
        apps = KoreApps(
            {
                BOT: KoreApp(
                    client_id=CLIENT_ID,
                    client_secret=SECRET,
                    algorithm=algorithm,
                    platform_url="https://platform.example",
                )
            }
        )
        self.botkit = KoreBotKit(apps, http=self.http)
        self.agents = ScriptedAgents(auto_join=None)
        self.store = MemoryStore()
        self.runtime = Runtime(
            bot=self.botkit, agents=self.agents, channel=self.botkit, store=self.store
        )
        self.webhooks = KoreWebhooks(self.runtime, self.botkit, prefix="/botkit")
        self.app = Starlette(routes=self.webhooks.routes())


@asynccontextmanager
async def stack(algorithm: str = "HS256") -> AsyncIterator[tuple[httpx.AsyncClient, Stack]]:
    built = Stack(algorithm)
    transport = httpx.ASGITransport(app=built.app)
    try:
        async with (
            built.runtime.running(),
            httpx.AsyncClient(transport=transport, base_url="http://botkit") as client,
        ):
            yield client, built
    finally:
        built.agents.close_all()
        await built.http.aclose()


def url(event: str, component: str | None = None) -> str:
    if component is None:
        return f"/botkit/sdk/bots/{BOT}/{event}"
    return f"/botkit/sdk/bots/{BOT}/components/{component}/{event}"


async def test_user_message_is_forwarded_to_the_bot_with_auth() -> None:
    async with stack() as (client, built):
        answer = await client.post(
            url("on_user_message"), json=payload(), headers={"token": token()}
        )
        assert answer.status_code == 200
        assert answer.json()["requestId"] == "r-1"  # BotKit echoes the request
        (call,) = built.platform_calls
        assert str(call.url) == f"{PLATFORM}/sendBotMessage/r-1"
        claims = jwt.decode(call.headers["auth"], SECRET, algorithms=["HS256"])
        assert claims["appId"] == CLIENT_ID
        assert 0 < claims["exp"] - time.time() <= 61
        assert json.loads(call.content)["message"] == "hello"


async def test_agent_transfer_carries_prechat_keyword_identity_and_targets() -> None:
    async with stack("HS512") as (client, built):
        answer = await client.post(
            url("on_agent_transfer", component="agenttransfer"),
            json=payload(None),
            headers={"token": token(alg="HS512")},
        )
        assert answer.status_code == 200
        conversation = await built.runtime.get(conversation_id(BOT, "u-1"))
        assert conversation is not None
        assert conversation.owner == "pending"  # escalating or queued: the agent side decides
        assert conversation.end_keyword == "endagentchat"
        assert conversation.user_name == "Help Docs"
        assert conversation.bot_cursor is not None
        assert (
            conversation.bot_cursor["kore.sendUserMessageUrl"] == f"{PLATFORM}/sendUserMessage/r-1"
        )
        context = built.agents.opened[0].context
        assert dict(context.prechat) == {"Pincode": "500081", "City": "Hyderabad"}
        assert context.variables["kore.firstName"] == "Help"
        assert [(t.kind, t.value) for t in context.targets] == [("queue", "billing")]
        # The waiting message went to the user through the payload's sendUserMessageUrl.
        assert any(str(c.url).endswith("/sendUserMessage/r-1") for c in built.platform_calls)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "the token header is missing"),
        ({"token": "not-a-jwt"}, "invalid token"),
        ({"token": token(secret="another-secret-" + "y" * 64)}, "Signature verification failed"),
        ({"token": token(app_id="cs-someone-else")}, "appId does not match"),
        ({"token": token(exp=time.time() - 3600)}, "expired"),
        ({"token": token(alg="HS512")}, "invalid token"),  # not the configured algorithm
        ({"apikey": SECRET}, "the token header is missing"),  # BotKit's legacy header: refused
    ],
)
async def test_bad_tokens_are_401(headers: dict[str, str], detail: str) -> None:
    async with stack() as (client, built):
        answer = await client.post(url("on_user_message"), json=payload(), headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert detail in answer.json()["detail"]
        assert answer.json()["field"] == "token"
        assert len(built.store) == 0
        assert not built.platform_calls


async def test_exp_is_required() -> None:
    async with stack() as (client, _):
        unexpiring = jwt.encode({"appId": CLIENT_ID}, SECRET, algorithm="HS256")
        answer = await client.post(
            url("on_user_message"), json=payload(), headers={"token": unexpiring}
        )
        assert answer.status_code == 401


@pytest.mark.parametrize(
    ("event", "body", "status", "field"),
    [
        ("on_user_message", b"{oops", 400, None),
        ("on_user_message", b"\xff\xfe", 400, None),
        ("on_user_message", b"[]", 422, "$"),
        ("on_user_message", {"message": 5}, 422, "message"),
        ("on_user_message", {"message": None}, 422, "message"),
        ("on_user_message", {"sendBotMessageUrl": None}, 422, "sendBotMessageUrl"),
        ("on_user_message", {"sendUserMessageUrl": "ftp://x"}, 422, "sendUserMessageUrl"),
        ("on_user_message", {"agent_transfer": "yes"}, 422, "agent_transfer"),
        (
            "on_user_message",
            {"channel": {"channelInfos": {"from": 7}}},
            422,
            "channel.channelInfos.from",
        ),
        ("on_user_message", {"channel": {}, "context": {}}, 422, "channel.channelInfos.from"),
        (
            "on_agent_transfer",
            {
                "context": {
                    "session": {"BotUserSession": {"miawMetaInfo": {"preChatInfo": {"a": []}}}}
                }
            },
            422,
            "context.session.BotUserSession.miawMetaInfo.preChatInfo.a",
        ),
        (
            "on_agent_transfer",
            {"context": {"session": {"BotUserSession": {"handoffTargets": [{"kind": "queue"}]}}}},
            422,
            "context.session.BotUserSession.handoffTargets[0].value",
        ),
        ("on_alert", {}, 404, "eventName"),
        ("on_user_message", b'{"message": "' + b"x" * (1024 * 1024) + b'"}', 413, None),
    ],
)
async def test_bad_bodies_are_problems_and_nothing_is_applied(
    event: str, body: dict[str, Any] | bytes, status: int, field: str | None
) -> None:
    async with stack() as (client, built):
        if isinstance(body, bytes):
            content = body
        else:
            merged = payload()
            merged.update(body)
            content = json.dumps(merged).encode()
        answer = await client.post(url(event), content=content, headers={"token": token()})
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json().get("field") == field
        assert len(built.store) == 0
        assert not built.platform_calls


async def test_on_event_is_acknowledged_without_a_step() -> None:
    async with stack() as (client, built):
        body = {**payload(None), "event": {"eventType": "endDialog"}}
        answer = await client.post(url("on_event"), json=body, headers={"token": token()})
        assert answer.status_code == 200
        assert len(built.store) == 0


# -- callback hosts ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["on_user_message", "on_bot_message", "on_agent_transfer"])
@pytest.mark.parametrize(
    "field", ["sendUserMessageUrl", "sendBotMessageUrl", "baseUrl", "callbackUrl"]
)
@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://collector.example/api/botsdk/stream",
        "https://platform.example.collector.example/x",  # a suffix is not the host
        "https://platform.example@collector.example/x",  # userinfo is not the host
        "http://127.0.0.1:9000/x",
    ],
)
async def test_callback_urls_off_the_allowed_hosts_are_refused(
    event: str, field: str, elsewhere: str
) -> None:
    async with stack() as (client, built):
        body = {**payload(), field: elsewhere}
        answer = await client.post(url(event), json=body, headers={"token": token()})
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == field
        assert "platform.example" in answer.json()["detail"]  # names what is allowed
        assert len(built.store) == 0
        assert not built.platform_calls
        assert built.webhooks.received[event, "403"] == 1


def test_allowed_callback_hosts() -> None:
    default = KoreApp(client_id="cs-1", client_secret=SECRET)
    assert default.allows_callback("http://127.0.0.1:5000/api/botsdk/stream/st-1")
    assert default.allows_callback("http://localhost/x")
    assert default.allows_callback("http://[::1]:8080/x")
    assert not default.allows_callback("https://bots.kore.ai/x")

    platform = KoreApp(client_id="cs-1", client_secret=SECRET, platform_url="https://Bots.Kore.ai")
    assert platform.allowed_callback_hosts == ("bots.kore.ai",)
    assert platform.allows_callback("https://bots.kore.ai:443/api/botsdk/stream/st-1")
    assert not platform.allows_callback("https://de-bots.kore.ai/x")
    assert not platform.allows_callback("ftp://bots.kore.ai/x")
    assert not platform.allows_callback("not a url")

    listed = KoreApp(
        client_id="cs-1",
        client_secret=SECRET,
        platform_url="https://bots.kore.ai",
        callback_hosts=["bots.kore.ai", "*.kore.example"],
    )
    assert listed.allows_callback("https://de.kore.example/x")
    assert not listed.allows_callback("https://kore.example/x")  # the wildcard is subdomains only
    assert not listed.allows_callback("https://evilkore.example/x")
    with pytest.raises(TypeError, match="callback_hosts"):
        KoreApp(client_id="cs-1", client_secret=SECRET, callback_hosts="bots.kore.ai")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="platform_url"):
        KoreApp(client_id="cs-1", client_secret=SECRET, platform_url="bots.kore.ai")


# -- fuzz -----------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

PATHS = [
    ("message",),
    ("requestId",),
    ("sendUserMessageUrl",),
    ("sendBotMessageUrl",),
    ("baseUrl",),
    ("callbackUrl",),
    ("agent_transfer",),
    ("channel",),
    ("channel", "channelInfos"),
    ("channel", "channelInfos", "from"),
    ("context",),
    ("context", "session"),
    ("context", "session", "UserContext"),
    ("context", "session", "UserContext", "firstName"),
    ("context", "session", "BotUserSession"),
    ("context", "session", "BotUserSession", "miawMetaInfo"),
    ("context", "session", "BotUserSession", "miawMetaInfo", "preChatInfo"),
    ("context", "session", "BotUserSession", "miawMetaInfo", "endChatShortHandCommand"),
    ("context", "session", "BotUserSession", "handoffTargets"),
]


def mutate(body: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool) -> dict[str, Any]:
    body = copy.deepcopy(body)
    node: Any = body
    for key in path[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return body
        node = node[key]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return body


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event=st.sampled_from(
        ["on_user_message", "on_bot_message", "on_agent_transfer", "on_event", "on_webhook", "x"]
    ),
    mutations=st.lists(st.tuples(st.sampled_from(PATHS), JSON, st.booleans()), max_size=3),
    whole=st.one_of(st.none(), JSON),
)
async def test_fuzzed_bodies_never_500_and_never_half_apply(
    event: str, mutations: list[tuple[tuple[str, ...], Any, bool]], whole: Any
) -> None:
    body: Any = payload()
    for path, value, delete in mutations:
        body = mutate(body, path, value, delete)
    if whole is not None:
        body = whole
    async with stack() as (client, built):
        answer = await client.post(url(event), content=json.dumps(body), headers={"token": token()})
        assert answer.status_code < 500
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == answer.status_code
            assert len(built.store) == 0
            assert not built.platform_calls
        else:
            assert answer.status_code == 200
