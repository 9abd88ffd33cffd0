"""The BotKit-compatible inbound routes: Kore webhooks → ``Runtime.feed``.

``POST {prefix}/sdk/bots/{botId}/{eventName}`` and
``POST {prefix}/sdk/bots/{botId}/components/{componentId}/{eventName}`` (``protocols/kore.md`` §3).
Each request is checked completely (JWT, size, JSON, field types, required fields) before anything
is applied; a bad one gets a 4xx ``application/problem+json`` naming the field. A good one becomes
one core event; the core decides what happens (who owns the conversation), and its effects run
through :class:`~handoff_adapters.kore.client.KoreBotKit` before the webhook is answered, so the
step is stored (with its outbox) by the time the platform gets its 200.

=====================  ======================================================================
``on_user_message``    ``UserMessage`` (the core sends it to the bot, or to the agent)
``on_bot_message``     ``BotReplied`` (delivered to the user unless an agent owns the chat)
``on_agent_transfer``  ``BotEscalated`` with pre-chat from ``miawMetaInfo.preChatInfo``, the end
                       keyword from ``miawMetaInfo.endChatShortHandCommand``, the user's identity
                       as variables, targets from ``BotUserSession.handoffTargets``
``on_event``           acknowledged (dialog ends and contact-center events change nothing here)
=====================  ======================================================================

Every webhook's URLs must point at a callback host its app allows (:class:`~.auth.KoreApp`):
our signed ``auth`` JWT is sent to them. Otherwise: 403 naming the field.

A user message carries its request's reply address as the core's channel cursor, with the ids of
the latest user messages applied. A retried ``on_user_message`` (same ``requestId``) is answered
200 and not applied again. Checking that memory and applying the message are serialized per
conversation in this process; two processes receiving the same retry at the same instant could
still both apply it (the platform retries after a timeout, not in parallel).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from handoff_adapters.kore.auth import AuthError, KoreApps
from handoff_adapters.kore.client import KoreBotKit
from handoff_adapters.kore.wire import (
    EVENT_NAMES,
    KoreCallbacks,
    Webhook,
    channel_cursor,
    field_of,
    parse_webhook,
    recent_message_ids,
)
from handoff_adapters.service.problems import MAX_BODY, BadRequest, problem, read_json_object
from handoff_core import events as ev
from handoff_core.errors import RemoteProtocolError
from handoff_core.runtime import KeyedLocks, Runtime

__all__ = ["KoreWebhooks", "conversation_id"]

log = logging.getLogger("handoff.kore")


def conversation_id(bot_id: str, user_id: str) -> str:
    return f"kore:{bot_id}:{user_id}"


class KoreWebhooks:
    """The routes, bound to a runtime (or a function returning the running one)."""

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime | None],
        botkit: KoreBotKit,
        *,
        apps: KoreApps | None = None,
        prefix: str = "",
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
        on_webhook: Callable[[str, str], None] | None = None,
    ) -> None:
        self._runtime = runtime
        self._on_webhook = on_webhook
        self.botkit = botkit
        self.apps = apps if apps is not None else botkit.apps
        self.prefix = prefix.rstrip("/")
        self.max_body = max_body
        self.clock = clock
        #: Webhooks by event name and outcome ("ok", "duplicate", or a refusal's HTTP status).
        self.received: dict[tuple[str, str], int] = {}
        #: One webhook of a conversation at a time (so a retry sees what the original stored).
        self._serialized = KeyedLocks()

    def routes(self) -> list[BaseRoute]:
        base = f"{self.prefix}/sdk/bots/{{bot_id}}"
        return [
            Route(
                f"{base}/components/{{component_id}}/{{event_name}}",
                self.endpoint,
                methods=["POST"],
            ),
            Route(f"{base}/{{event_name}}", self.endpoint, methods=["POST"]),
        ]

    def runtime(self) -> Runtime | None:
        return self._runtime if isinstance(self._runtime, Runtime) else self._runtime()

    async def endpoint(self, request: Request) -> Response:
        bot_id = request.path_params["bot_id"]
        event_name = request.path_params["event_name"]
        try:
            try:
                self.apps.verify(bot_id, request.headers.get("token"))
            except AuthError as exc:
                raise BadRequest(401, "Unauthorized", str(exc), field="token") from None
            _check_event_name(event_name)
            body = await read_json_object(request, limit=self.max_body)
            try:
                webhook = parse_webhook(body)
                cid, _, event = self.translate(bot_id, event_name, webhook)
            except RemoteProtocolError as exc:
                raise BadRequest(422, "Invalid webhook", exc.message, field=field_of(exc)) from None
        except BadRequest as exc:
            self._count(event_name, str(exc.status))
            return exc.response()
        runtime = self.runtime()
        if runtime is None:
            self._count(event_name, "503")
            return problem(503, "Not ready", "the service is starting or stopping")
        outcome = "ok"
        if event is not None:
            try:
                async with self._serialized(cid):
                    if not await self._apply(runtime, cid, webhook, event):
                        outcome = "duplicate"
            except Exception:
                log.exception("conversation %s: %s could not be applied", cid, event_name)
                self._count(event_name, "503")
                return problem(503, "Unavailable", "the conversation could not be updated")
        self._count(event_name, outcome)
        # BotKit answers with the request it received (ackImmediately events).
        return JSONResponse(body)

    async def _apply(self, runtime: Runtime, cid: str, webhook: Webhook, event: ev.Event) -> bool:
        """Feed ``event``; ``False`` if it is a user message already applied (a retry)."""
        stored = await runtime.get(cid)
        if isinstance(event, ev.UserMessage) and event.cursor is not None:
            recent = recent_message_ids(stored.channel_cursor if stored else None)
            if event.message_id in recent:
                log.info("conversation %s: retried user message %s dropped", cid, event.message_id)
                return False
            callbacks = KoreCallbacks.from_cursor(event.cursor)  # translate() made it
            if callbacks is not None:
                event = attrs.evolve(event, cursor=channel_cursor(callbacks, recent))
        name = webhook.user_name()
        if name is not None and stored is None:
            await runtime.start(cid, user_name=name)
        await runtime.feed(cid, event)
        return True

    def translate(
        self, bot_id: str, event_name: str, webhook: Webhook
    ) -> tuple[str, KoreCallbacks, ev.Event | None]:
        """One webhook → (conversation id, callbacks, core event); raises naming a bad field."""
        user_id = webhook.user_id
        if not user_id:
            raise RemoteProtocolError("required field missing @ $.channel.channelInfos.from")
        if not webhook.sendUserMessageUrl:
            raise RemoteProtocolError("required field missing @ $.sendUserMessageUrl")
        for name in _CALLBACK_FIELDS:
            value = getattr(webhook, name)
            if value is not None:
                _check_url(value, name)
        self._check_callback_hosts(bot_id, webhook)
        request_id = webhook.requestId or secrets.token_hex(16)  # BotKit generates one too
        now = self.clock()
        callbacks = KoreCallbacks(
            bot_id=bot_id,
            request_id=request_id,
            user_id=user_id,
            channel=webhook.channel_type,
            base_url=webhook.baseUrl,
            send_user_message_url=webhook.sendUserMessageUrl,
            send_bot_message_url=webhook.sendBotMessageUrl,
            received_at=now,
        )
        cid = conversation_id(bot_id, user_id)
        event: ev.Event | None
        if event_name == "on_user_message":
            if webhook.message is None:
                raise RemoteProtocolError("required field missing @ $.message")
            if not webhook.sendBotMessageUrl:
                raise RemoteProtocolError("required field missing @ $.sendBotMessageUrl")
            # The cursor gets the remembered message ids when applied (see _apply).
            event = ev.UserMessage(
                at=now, text=webhook.message, message_id=request_id, cursor=callbacks.to_cursor()
            )
        elif event_name == "on_bot_message":
            if webhook.message is None:
                raise RemoteProtocolError("required field missing @ $.message")
            event = ev.BotReplied(
                at=now,
                text=webhook.message,
                peer_id=f"msg:{request_id}",
                cursor=callbacks.to_cursor(),
            )
        elif event_name == "on_agent_transfer":
            event = ev.BotEscalated(
                at=now,
                reason=ev.EscalationReason.BOT_DECISION,
                targets=webhook.targets(),
                variables=webhook.identity(),
                prechat=webhook.prechat(),
                end_keyword=webhook.end_keyword(),
                message_id=request_id,
                peer_id=f"transfer:{request_id}",
                cursor=callbacks.to_cursor(),
            )
        else:  # on_event: dialog ends and contact-center events change nothing here
            event = None
        return cid, callbacks, event

    def _check_callback_hosts(self, bot_id: str, webhook: Webhook) -> None:
        app = self.apps.for_bot(bot_id)
        if app is None:  # verify() already refused it; kept for type narrowing
            raise CallbackHostRefused(f"no app is configured for bot {bot_id!r}", "botId")
        for name in _CALLBACK_FIELDS:
            value = getattr(webhook, name)
            if value is not None and not app.allows_callback(value):
                allowed = ", ".join(app.allowed_callback_hosts)
                raise CallbackHostRefused(
                    f"{name} points at a host this app does not allow (allowed: {allowed}; "
                    "set callback_hosts or platform_url on the app)",
                    name,
                )

    def _count(self, event_name: str, outcome: str) -> None:
        name = event_name if event_name in EVENT_NAMES else "unknown"
        self.received[name, outcome] = self.received.get((name, outcome), 0) + 1
        if self._on_webhook is not None:
            self._on_webhook(name, outcome)


#: The webhook fields holding platform URLs (each is checked against the allowed hosts).
_CALLBACK_FIELDS = ("sendUserMessageUrl", "sendBotMessageUrl", "baseUrl", "callbackUrl")


class CallbackHostRefused(BadRequest):
    """A webhook's callback URL points outside the app's allowed hosts."""

    def __init__(self, detail: str, field: str) -> None:
        super().__init__(403, "Callback host not allowed", detail, field=field)


def _check_event_name(event_name: str) -> None:
    if event_name not in EVENT_NAMES:
        expected = ", ".join(sorted(EVENT_NAMES))
        raise BadRequest(
            404,
            "Unknown event",
            f"unknown event {event_name!r}; expected one of {expected}",
            field="eventName",
        )


def _check_url(value: str, name: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise RemoteProtocolError(f"expected an http(s) URL @ $.{name}")
