"""Done-when, over real loopback HTTP: Kore simulator webhook → `handoff serve` → MIAW simulator
agent → back to the user through `sendUserMessageUrl`, then the agent ends and the platform is
told (`clearAgentSession`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import httpx
import pytest

from handoff_adapters._serve import serve
from handoff_adapters.kore import conversation_id
from handoff_adapters.kore.simulator import KoreSimulator
from handoff_adapters.miaw import conversation_uuid
from handoff_adapters.miaw.simulator import MiawSimulator
from handoff_adapters.service.app import HandoffService
from handoff_adapters.service.config import parse_config
from handoff_core import State

pytestmark = pytest.mark.anyio

SECRET = "kore-e2e-secret-" + "k" * 64


@attrs.define
class Stack:
    kore: KoreSimulator
    miaw: MiawSimulator
    service: HandoffService
    control: httpx.AsyncClient
    served: httpx.AsyncClient
    seen: dict[str, int] = attrs.field(factory=dict)

    async def say(self, user: str, text: str) -> str:
        """The user types ``text``; returns the webhook's request id."""
        answer = await self.control.post(f"/control/users/{user}/messages", json={"text": text})
        assert answer.json()["status"] == 200, answer.json()
        request_id: str = answer.json()["requestId"]
        return request_id

    async def shown(self, user: str, wanted: str) -> list[str]:
        """What the user was shown since the last call, up to a line containing ``wanted``."""
        texts: list[str] = []
        with anyio.fail_after(10):
            while not any(wanted in text for text in texts):
                page = (
                    await self.control.get(
                        f"/control/users/{user}/messages",
                        params={"after": self.seen.get(user, 0), "wait": 2},
                    )
                ).json()
                texts += [message["text"] for message in page["messages"]]
                self.seen[user] = page["next"]
        return texts


@asynccontextmanager
async def kore_miaw_stack(**miaw_options: Any) -> AsyncIterator[Stack]:
    miaw = MiawSimulator(**({"auto_join": "Jane Agent"} | miaw_options))
    # rotate_requests: the platform refuses every request of a user but the latest (HTTP 410).
    kore = KoreSimulator(
        client_secret=SECRET,
        pre_chat={"City": "Hyderabad"},
        end_keyword="stopagent",
        rotate_requests=True,
    )
    async with serve(miaw.app) as miaw_url, serve(kore.app) as kore_url:
        config = parse_config(
            {
                "bot": {
                    "type": "kore",
                    "apps": [
                        {
                            "client_id": kore.client_id,
                            "client_secret_env": "KORE_SECRET",
                            "bot_id": kore.bot_id,
                            "platform_url": kore_url,
                        }
                    ],
                },
                "backends": {
                    "web": {
                        "type": "miaw",
                        "url": miaw_url,
                        "org_id": miaw.org_id,
                        "developer_name": miaw.developer_name,
                        "heartbeat_timeout": 5.0,
                    },
                },
                "routing": {"rules": [{"channel": "kore/rtm", "backend": "web"}]},
            }
        )
        service = HandoffService(config, environ={"KORE_SECRET": SECRET})
        async with (
            serve(service.app) as served_url,
            httpx.AsyncClient(base_url=kore_url, timeout=10) as control,
            httpx.AsyncClient(base_url=served_url, timeout=10) as served,
        ):
            await control.post("/control/config", json={"botkit_url": served_url})
            yield Stack(kore, miaw, service, control, served)


async def test_kore_webhook_to_miaw_agent_and_back() -> None:
    async with kore_miaw_stack() as stack:
        cid = conversation_id(stack.kore.bot_id, "u-7")
        await stack.say("u-7", "hi")
        assert "Hello! I am the Kore demo bot." in await stack.shown("u-7", "Kore demo bot")

        await stack.say("u-7", "transfer me")
        texts = await stack.shown("u-7", "stopagent")
        assert "Jane Agent has joined the chat." in texts
        miaw_conversation = stack.miaw.conversation(conversation_uuid(f"{cid}#1"))
        assert miaw_conversation.routing_attributes == {"City": "Hyderabad"}
        # startAgentSession is the step's last effect, after the messages read above.
        with anyio.fail_after(5):
            while not stack.kore.user("u-7").agent_mode:
                await stack.kore.user("u-7").changed.wait()

        request_id = await stack.say("u-7", "where is my parcel?")
        with anyio.fail_after(5):
            await stack.miaw.wait_for(
                lambda _: miaw_conversation.user_messages == ["where is my parcel?"]
            )
        # The platform retries the webhook: answered 200, not relayed to the agent again.
        retried = await stack.control.post(f"/control/webhooks/{request_id}/retry")
        assert retried.json()["status"] == 200
        stack.miaw.say(miaw_conversation.id, "It is on its way")
        assert "It is on its way" in await stack.shown("u-7", "It is on its way")
        agent_lines = [c for c in stack.kore.calls if c["message"] == "It is on its way"]
        # Through the URLs of the user's latest message, not those of the transfer.
        assert [(c["kind"], c["requestId"]) for c in agent_lines] == [
            ("sendUserMessage", request_id)
        ]
        assert miaw_conversation.user_messages == ["where is my parcel?"]

        stack.miaw.end(miaw_conversation.id)
        await stack.shown("u-7", "The agent has ended the chat")
        with anyio.fail_after(5):
            while stack.kore.user("u-7").agent_mode:
                await stack.kore.user("u-7").changed.wait()
        conversation = await stack.service.runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.BOT

        await stack.say("u-7", "thanks")
        assert "You said: thanks" in await stack.shown("u-7", "You said: thanks")

        assert stack.kore.refused == []
        metrics = (await stack.served.get("/metrics")).text
        assert 'handoff_webhooks_total{event="on_user_message",outcome="duplicate"} 1.0' in metrics
        assert 'handoff_transfers_total{outcome="Succeeded"} 1.0' in metrics
        assert 'handoff_webhooks_total{event="on_agent_transfer",outcome="ok"} 1.0' in metrics
        assert 'handoff_relay_latency_seconds_count{direction="agent_to_user"} 1.0' in metrics


async def test_user_ends_with_the_kore_keyword_and_miaw_is_closed() -> None:
    async with kore_miaw_stack() as stack:
        cid = conversation_id(stack.kore.bot_id, "u-8")
        await stack.say("u-8", "transfer me")
        await stack.shown("u-8", "stopagent")
        miaw_conversation = stack.miaw.conversation(conversation_uuid(f"{cid}#1"))
        await stack.say("u-8", "StopAgent")
        assert any("You have ended the chat" in t for t in await stack.shown("u-8", "ended"))
        with anyio.fail_after(5):
            await stack.miaw.wait_for(lambda _: miaw_conversation.closed)
        assert not stack.kore.user("u-8").agent_mode


async def test_routing_failure_gives_the_user_back_to_the_bot() -> None:
    async with kore_miaw_stack(auto_join=None, routing_failure="No agents are available.") as (
        stack
    ):
        cid = conversation_id(stack.kore.bot_id, "u-9")
        await stack.say("u-9", "transfer me")
        texts = await stack.shown("u-9", "no agent is available")
        assert "Please wait while we connect you to an agent." in texts
        conversation = await stack.service.runtime.get(cid)
        assert conversation is not None
        assert conversation.state is State.TRANSFER_FAILED
        with anyio.fail_after(5):
            while "clearAgentSession" not in [c["kind"] for c in stack.kore.calls]:
                await stack.kore.user("u-9").changed.wait()
        metrics = (await stack.served.get("/metrics")).text
        assert 'handoff_transfers_total{outcome="NoAgentAvailable"} 1.0' in metrics
        await stack.say("u-9", "hello")
        assert "Hello! I am the Kore demo bot." in await stack.shown("u-9", "demo bot")
