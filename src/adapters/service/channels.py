"""User channels of the service and the backend routing.

* :class:`ApiChannel`: the generic channel API's side of deliveries: every delivery goes to the
  conversation's SSE listeners and, when configured, is POSTed to a webhook URL.
* :class:`ChannelRouter`: one ``UserChannel`` over several, chosen by the conversation id's
  prefix (``kore:…``, ``api:…``, ``terminal:…``): the id is all it needs, so any process can
  answer any conversation.
* :class:`BackendRouter`: the ``choose_backend`` of the runtime: rules by channel and escalation
  target, then the default backend (Kore's "default agent system" and channel mapping).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
from anyio.streams.memory import MemoryObjectSendStream

from handoff_adapters.service.config import RouteRule
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.ports import UserChannel

__all__ = ["ApiChannel", "BackendRouter", "ChannelRouter", "channels_of", "delivery_json"]

log = logging.getLogger("handoff.service")

#: Deliveries buffered per SSE listener before the slowest listener starts losing them.
LISTENER_BUFFER = 256


def channels_of(conversation: Conversation) -> tuple[str, ...]:
    """The channel names a conversation answers to: its id prefix, and for Kore ``kore/<type>``."""
    prefix = conversation.id.partition(":")[0]
    names = [prefix]
    cursor = conversation.bot_cursor or {}
    kore_channel = cursor.get("kore.channel")
    if prefix == "kore" and isinstance(kore_channel, str):
        names.append(f"kore/{kore_channel}")
    return tuple(names)


def delivery_json(conversation_id: str, delivery: fx.DeliverToUser) -> dict[str, Any]:
    return {
        "type": "message",
        "conversation": conversation_id,
        "id": delivery.key,
        "sender": delivery.sender.value,
        "text": delivery.text,
        "agent_name": delivery.agent_name,
        "message_key": delivery.message_key,
        "language": delivery.language,
    }


class ApiChannel:
    """Deliveries of ``api:`` conversations: SSE listeners and an optional webhook."""

    PREFIX = "api:"

    def __init__(self, *, webhook_url: str | None = None, http: httpx.AsyncClient | None = None):
        self.webhook_url = webhook_url
        self.http = http
        self._listeners: dict[str, set[MemoryObjectSendStream[dict[str, Any]]]] = {}

    def external_id(self, conversation_id: str) -> str:
        return conversation_id.removeprefix(self.PREFIX)

    def listen(self, external_id: str) -> Any:
        """A receive stream of this conversation's deliveries (close it when done)."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](LISTENER_BUFFER)
        self._listeners.setdefault(external_id, set()).add(send)
        return send, receive

    def forget(self, external_id: str, send: MemoryObjectSendStream[dict[str, Any]]) -> None:
        listeners = self._listeners.get(external_id)
        if listeners is not None:
            listeners.discard(send)
            if not listeners:
                del self._listeners[external_id]
        send.close()

    def listeners(self, external_id: str) -> int:
        return len(self._listeners.get(external_id, ()))

    async def _publish(self, external_id: str, item: dict[str, Any]) -> None:
        for send in list(self._listeners.get(external_id, ())):
            try:
                send.send_nowait(item)
            except anyio.WouldBlock:
                log.warning("conversation api:%s: a slow SSE listener lost a delivery", external_id)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.forget(external_id, send)
        if self.webhook_url is not None and self.http is not None:
            response = await self.http.post(self.webhook_url, json=item)
            response.raise_for_status()

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        external = self.external_id(conversation.id)
        await self._publish(external, delivery_json(external, delivery))

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        external = self.external_id(conversation.id)
        await self._publish(
            external,
            {
                "type": "typing",
                "conversation": external,
                "typing": indicator.typing,
                "agent_name": indicator.agent_name,
            },
        )


class ChannelRouter:
    def __init__(self, channels: Mapping[str, UserChannel], default: UserChannel) -> None:
        self.channels = dict(channels)
        self.default = default

    def channel(self, conversation: Conversation) -> UserChannel:
        return self.channels.get(conversation.id.partition(":")[0], self.default)

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        await self.channel(conversation).deliver(conversation, delivery)

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        await self.channel(conversation).typing(conversation, indicator)


class BackendRouter:
    """First matching rule wins; a rule matches on channel and/or target (``kind`` or
    ``kind:value``); otherwise the default backend."""

    def __init__(self, rules: list[RouteRule], default: str) -> None:
        self.rules = rules
        self.default = default

    def __call__(self, conversation: Conversation, targets: tuple[ev.EscalationTarget, ...]) -> str:
        names = channels_of(conversation)
        for rule in self.rules:
            if rule.channel is not None and rule.channel not in names:
                continue
            if rule.target is not None and not any(_matches(rule.target, t) for t in targets):
                continue
            return rule.backend
        return self.default


def _matches(pattern: str, target: ev.EscalationTarget) -> bool:
    kind, _, value = pattern.partition(":")
    return target.kind == kind and (not value or target.value == value)
