"""The Kore.ai ports: Kore is both the bot platform and the user's channel.

:class:`KoreBotKit` performs the core's effects by calling the URLs the platform put in its
webhooks (``protocols/kore.md`` §5), with the ``auth`` JWT:

* ``ForwardToBot`` → ``sendBotMessageUrl`` (the bot answers later with an ``on_bot_message``
  webhook, so :meth:`send` returns no events);
* ``DeliverToUser`` → ``sendUserMessageUrl``;
* when a step connects an agent → ``{baseUrl}/startAgentSession/{requestId}``; when a step leaves
  an agent session (agent ended, user ended, transfer failed…) → ``clearAgentSession``, so the
  platform gives the user back to the bot.

Where to call is the conversation's bot cursor (the ids and URLs of the latest bot-side webhook,
stored by the core), or, while a webhook of that conversation is being handled, that webhook's own
URLs (:meth:`KoreBotKit.handling`). Nothing else is kept per conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from handoff_adapters._http import HttpClients
from handoff_adapters.kore.auth import KoreApps
from handoff_adapters.kore.wire import KoreCallbacks
from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.errors import RemoteProtocolError
from handoff_core.machine import State

__all__ = ["KoreBotKit"]

log = logging.getLogger("handoff.kore")

_WITH_SESSION = frozenset({State.ESCALATING, State.QUEUED, State.AGENT_CONNECTED})


class KoreBotKit:
    """``BotPlatform`` and ``UserChannel`` for conversations that arrive as Kore webhooks."""

    def __init__(self, apps: KoreApps, *, http: HttpClients | None = None) -> None:
        self.apps = apps
        self._own_http = http is None
        self.http = http if http is not None else HttpClients(shards=1)
        # conversation id → the callbacks of the webhook being handled for it right now. Only
        # lives for the duration of one request; the stored bot cursor is the durable copy.
        self._inflight: dict[str, KoreCallbacks] = {}
        #: Platform calls made, by kind (for metrics and tests).
        self.calls: dict[str, int] = {}

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    @contextmanager
    def handling(self, conversation_id: str, callbacks: KoreCallbacks) -> Iterator[None]:
        """Use ``callbacks`` for this conversation's effects while the block runs."""
        self._inflight[conversation_id] = callbacks
        try:
            yield
        finally:
            if self._inflight.get(conversation_id) is callbacks:
                del self._inflight[conversation_id]

    def callbacks(self, conversation: Conversation) -> KoreCallbacks:
        found = self._inflight.get(conversation.id) or KoreCallbacks.from_cursor(
            conversation.bot_cursor
        )
        if found is None:
            raise RemoteProtocolError(
                f"conversation {conversation.id!r}: no Kore webhook has given callback URLs yet"
            )
        return found

    # -- BotPlatform ------------------------------------------------------------------------------

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        callbacks = self.callbacks(conversation)
        if not callbacks.send_bot_message_url:
            raise RemoteProtocolError(
                f"conversation {conversation.id!r}: the platform gave no sendBotMessageUrl"
            )
        body = self._payload(conversation, callbacks, message.text)
        await self._post("sendBotMessage", callbacks, callbacks.send_bot_message_url, body)
        return ()  # the bot answers with an on_bot_message webhook

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        # Kore has no bot-to-bot transfer through BotKit and never asks for one here.
        log.info(
            "conversation %s: bot-to-bot transfer is not a Kore feature; ignored", conversation.id
        )
        return ()

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        # The platform learns the outcome through start/clearAgentSession (see deliver()).
        return ()

    # -- UserChannel ------------------------------------------------------------------------------

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        callbacks = self.callbacks(conversation)
        if not callbacks.send_user_message_url:
            raise RemoteProtocolError(
                f"conversation {conversation.id!r}: the platform gave no sendUserMessageUrl"
            )
        body = self._payload(conversation, callbacks, delivery.text)
        await self._post("sendUserMessage", callbacks, callbacks.send_user_message_url, body)
        change = _agent_mode_change(conversation, delivery)
        if change is not None and callbacks.base_url:
            url = f"{callbacks.base_url.rstrip('/')}/{change}/{callbacks.request_id}"
            await self._post(change, callbacks, url, self._payload(conversation, callbacks, ""))

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        """BotKit has no typing indicator API: nothing to do."""

    # -- wire -------------------------------------------------------------------------------------

    def _payload(
        self, conversation: Conversation, callbacks: KoreCallbacks, text: str
    ) -> dict[str, Any]:
        # The shape of BotKit's OnMessagePayload.toJSON() for the fields we know.
        return {
            "__payloadClass": "OnMessagePayload",
            "requestId": callbacks.request_id,
            "botId": callbacks.bot_id,
            "componentId": "default",
            "baseUrl": callbacks.base_url,
            "sendUserMessageUrl": callbacks.send_user_message_url,
            "sendBotMessageUrl": callbacks.send_bot_message_url,
            "channel": {"from": callbacks.user_id, "type": callbacks.channel},
            "message": text,
            "agent_transfer": conversation.state is State.AGENT_CONNECTED,
            "overrideMessagePayload": None,
            "ackMessage": True,
        }

    async def _post(
        self, kind: str, callbacks: KoreCallbacks, url: str, body: dict[str, Any]
    ) -> None:
        headers = {"auth": self.apps.sign(callbacks.bot_id)}
        response = await self.http.short.post(url, json=body, headers=headers)
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if response.status_code >= 400:
            detail = f"Kore {kind} answered HTTP {response.status_code}"
            if response.status_code >= 500 or response.status_code == 429:
                raise httpx.HTTPStatusError(detail, request=response.request, response=response)
            raise RemoteProtocolError(detail)


def _agent_mode_change(conversation: Conversation, delivery: fx.DeliverToUser) -> str | None:
    """``startAgentSession``/``clearAgentSession`` if this step entered or left agent mode.

    Done once per step: on the step's first system message (every such step says one).
    """
    if delivery.sender is not fx.Sender.SYSTEM or not conversation.audit:
        return None
    last = conversation.audit[-1]
    if last.step != conversation.step:
        return None
    first_system = next(
        (
            effect.key
            for effect in conversation.outbox
            if isinstance(effect, fx.DeliverToUser) and effect.sender is fx.Sender.SYSTEM
        ),
        delivery.key,
    )
    if delivery.key != first_system:
        return None
    if last.dest is State.AGENT_CONNECTED and last.source is not State.AGENT_CONNECTED:
        return "startAgentSession"
    if last.source in _WITH_SESSION and last.dest not in _WITH_SESSION:
        return "clearAgentSession"
    return None
