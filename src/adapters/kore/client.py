"""The Kore.ai ports: Kore is both the bot platform and the user's channel.

:class:`KoreBotKit` performs the core's effects by calling the URLs the platform put in its
webhooks (``protocols/kore.md`` §5), with the ``auth`` JWT:

* ``ForwardToBot`` → ``sendBotMessageUrl`` (the bot answers later with an ``on_bot_message``
  webhook, so :meth:`send` returns no events);
* ``DeliverToUser`` → ``sendUserMessageUrl``;
* when a step connects an agent → ``{baseUrl}/startAgentSession/{requestId}``; when a step leaves
  an agent session (agent ended, user ended, transfer failed…) → ``clearAgentSession``, so the
  platform gives the user back to the bot.

Where to call is the freshest request the platform gave for the conversation: its channel cursor
(the latest ``on_user_message``) or its bot cursor (the latest ``on_bot_message`` /
``on_agent_transfer``), both stored by the core, whichever webhook arrived last. Kore mints a
request id, with its own URLs, per webhook; during a long agent chat the user's latest message is
the live one, so agent lines go out through it. Nothing else is kept per conversation that a
restart would need: the only in-process memory is when each request id was last extended.

Long agent chats (``protocols/kore.md`` §5, §7; Kore's BotKit SDK docs, ``sdk.extendRequestId``):
BotKit keeps a request id usable with ``POST {baseUrl}/extendcallid/{requestId}``. How long a
request id lives unextended is not documented; the docs' sample re-extends every 4 minutes, and
the docs warn it does not help after 15 minutes without activity (the platform then resets
agent_transfer mode anyway). So before a call through a request older than ``extend_after``
seconds (default 240, as the sample) we extend it first, at most once per ``extend_after``.
A stretch of silence longer than the platform's window is not bridged (that needs a timer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

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
#: Seconds a request id is used before it is extended (the docs' sample extends every 4 min).
EXTEND_AFTER: Final = 240.0
#: Request ids whose last extension is remembered (a lost entry costs one extra extension).
_EXTENDED_KEPT: Final = 4096


class KoreBotKit:
    """``BotPlatform`` and ``UserChannel`` for conversations that arrive as Kore webhooks."""

    def __init__(
        self,
        apps: KoreApps,
        *,
        http: HttpClients | None = None,
        extend_after: float | None = EXTEND_AFTER,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.apps = apps
        self._own_http = http is None
        self.http = http if http is not None else HttpClients(shards=1)
        self.extend_after = extend_after
        self.clock = clock if clock is not None else apps.clock
        # request id → when we last extended it. A cache only: after a restart the request's
        # receipt time (in the cursor) stands in, which at worst extends once more.
        self._extended: dict[str, float] = {}
        #: Platform calls made, by kind (for metrics and tests).
        self.calls: dict[str, int] = {}

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    def callbacks(self, conversation: Conversation) -> KoreCallbacks:
        """The freshest reply address of ``conversation``.

        The channel cursor (latest user message) and the bot cursor (latest bot-side webhook)
        each hold one platform request; the one received last wins, by our receipt time (Kore's
        request ids are opaque, not ordered). On a tie the user's request wins: it is the one the
        platform is waiting on.
        """
        user = KoreCallbacks.from_cursor(conversation.channel_cursor)
        bot = KoreCallbacks.from_cursor(conversation.bot_cursor)
        found = max((c for c in (user, bot) if c is not None), default=None, key=_receipt)
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
        await self._keep_alive(conversation, callbacks)
        body = self._payload(conversation, callbacks, delivery.text)
        await self._post("sendUserMessage", callbacks, callbacks.send_user_message_url, body)
        change = _agent_mode_change(conversation, delivery)
        if change is not None and callbacks.base_url:
            url = f"{callbacks.base_url.rstrip('/')}/{change}/{callbacks.request_id}"
            await self._post(change, callbacks, url, self._payload(conversation, callbacks, ""))

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        """BotKit has no typing indicator API: nothing to do."""

    # -- wire -------------------------------------------------------------------------------------

    async def _keep_alive(self, conversation: Conversation, callbacks: KoreCallbacks) -> None:
        """``extendcallid`` before using a request older than ``extend_after`` (see the module)."""
        if self.extend_after is None or not callbacks.base_url or not callbacks.request_id:
            return
        now = self.clock()
        since = self._extended.get(callbacks.request_id, callbacks.received_at)
        if now - since < self.extend_after:
            return
        url = f"{callbacks.base_url.rstrip('/')}/extendcallid/{callbacks.request_id}"
        try:
            body = self._payload(conversation, callbacks, "")
            await self._post("extendcallid", callbacks, url, body)
        except (httpx.HTTPError, RemoteProtocolError) as exc:
            # The send that follows says whether the request still works; it reports the error.
            log.warning("conversation %s: extendcallid failed: %s", conversation.id, exc)
            return
        self._extended.pop(callbacks.request_id, None)
        self._extended[callbacks.request_id] = now
        while len(self._extended) > _EXTENDED_KEPT:
            del self._extended[next(iter(self._extended))]

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


def _receipt(callbacks: KoreCallbacks) -> float:
    return callbacks.received_at


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
