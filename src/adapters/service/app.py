"""The ``handoff serve`` ASGI app (Starlette): Kore webhooks, the generic channel API, health and
metrics around one :class:`~handoff_core.runtime.Runtime`.

Standalone: ``handoff serve --config handoff.toml`` (hypercorn). Inside your own Starlette or
FastAPI app: mount ``service.app`` and run ``service.lifespan()`` in your app's lifespan (mounted
apps' lifespans are not run by Starlette)::

    service = HandoffService(load_config("handoff.toml"))

    @asynccontextmanager
    async def lifespan(app):
        async with service.lifespan():
            yield

    app = Starlette(routes=[Mount("/handoff", app=service.app)], lifespan=lifespan)

Generic channel API (``{prefix}/api/conversations/{id}/…``), for a front end that is neither
Kore nor Einstein: ``POST …/messages`` ``{"text": …, "message_id"?: …}``, ``POST …/typing``
``{"typing": bool}``, ``POST …/leave``, ``GET …`` (state), ``GET …/events`` (SSE of deliveries);
deliveries are also POSTed to ``channels.api.webhook_url`` when set.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from handoff_adapters._http import HttpClients
from handoff_adapters.service.channels import ApiChannel, BackendRouter, ChannelRouter
from handoff_adapters.service.config import Config
from handoff_adapters.service.metrics import MeteredBackend, MeteredChannel, MeteredStore, Metrics
from handoff_adapters.service.problems import BadRequest, problem, read_json_object
from handoff_adapters.service.registry import (
    BuildContext,
    build_backend,
    build_bot,
    build_store,
)
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.ports import AgentBackend, SessionStore, UserChannel
from handoff_core.runtime import Runtime

__all__ = ["HandoffService", "create_app"]

log = logging.getLogger("handoff.service")

T = TypeVar("T")

_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
#: Seconds between SSE keep-alive comments.
SSE_KEEPALIVE = 15.0


class HandoffService:
    """Everything ``handoff serve`` runs, built from a :class:`Config`."""

    def __init__(
        self,
        config: Config,
        *,
        environ: Mapping[str, str] | None = None,
        store: SessionStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        extra_channels: Mapping[str, UserChannel] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self.http = HttpClients(transport=transport)
        context = BuildContext(
            environ=os.environ if environ is None else environ, http=self.http, clock=clock
        )
        self.bot = build_bot(config.bot, context)
        self.backends: dict[str, AgentBackend] = {
            name: build_backend(name, table, context) for name, table in config.backends.items()
        }
        self.api = ApiChannel(webhook_url=config.channels.api.webhook_url, http=self.http.short)
        channels: dict[str, UserChannel] = {"api": self.api, **(extra_channels or {})}
        if self.bot.kore is not None:
            channels["kore"] = self.bot.kore
        self.router = BackendRouter(config.routing.rules, config.default_backend())
        #: The store this service built from ``[store]`` (it opens and closes it); a store passed
        #: in belongs to the caller.
        self.owned_store: SessionStore | None = None
        if store is None:
            store = self.owned_store = build_store(config.store, context)
        self.store: SessionStore = store
        self.runtime = Runtime(
            bot=self.bot.platform,
            agents={
                name: MeteredBackend(backend, self.metrics, clock)
                for name, backend in self.backends.items()
            },
            channel=MeteredChannel(ChannelRouter(channels, self.api), self.metrics, clock),
            store=MeteredStore(self.store, self.metrics),
            policy=config.policy.build(),
            choose_backend=self.router,
            clock=clock,
            instance_id=config.server.instance_id or socket.gethostname(),
        )
        self.ready = False
        self.kore_webhooks: Any = None
        self.app = Starlette(routes=self._routes(), lifespan=self._lifespan)

    def __repr__(self) -> str:
        return (
            f"HandoffService(bot={self.config.bot.get('type')!r}, backends={list(self.backends)})"
        )

    # -- lifecycle --------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[HandoffService]:
        """Run the runtime (and close every client afterwards)."""
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.http.aclose)
            for backend in self.backends.values():
                closer = getattr(backend, "aclose", None)
                if closer is not None:
                    stack.push_async_callback(closer)
            if self.owned_store is not None:
                closer = getattr(self.owned_store, "aclose", None)
                if closer is not None:
                    stack.push_async_callback(closer)
                opener = getattr(self.owned_store, "open", None)
                if opener is not None:
                    await opener()  # a bad file fails the start, clearly, before any traffic
            await stack.enter_async_context(self.runtime.running())
            self.ready = True
            try:
                yield self
            finally:
                self.ready = False

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.lifespan():
            yield

    def running_runtime(self) -> Runtime | None:
        return self.runtime if self.ready else None

    # -- routes -----------------------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        prefix = self.config.server.prefix.rstrip("/")
        routes: list[BaseRoute] = [
            Route(f"{prefix}/healthz", self.healthz, methods=["GET"]),
            Route(f"{prefix}/readyz", self.readyz, methods=["GET"]),
            Route(f"{prefix}/metrics", self.prometheus, methods=["GET"]),
        ]
        if self.bot.kore is not None:
            from handoff_adapters.kore import KoreWebhooks

            self.kore_webhooks = KoreWebhooks(
                self.running_runtime,
                self.bot.kore,
                prefix=prefix + self.bot.kore_prefix.rstrip("/"),
                max_body=self.config.server.max_body,
                clock=self.clock,
                on_webhook=lambda event, outcome: self.metrics.webhooks.labels(
                    event, outcome
                ).inc(),
            )
            routes += self.kore_webhooks.routes()
        if self.config.channels.api.enabled and self.bot.kore is None:
            # With Kore, Kore is the channel: its conversations can't be driven from here.
            base = f"{prefix}/api/conversations/{{conversation}}"
            routes += [
                Route(base, self.conversation_state, methods=["GET"]),
                Route(f"{base}/messages", self.user_message, methods=["POST"]),
                Route(f"{base}/typing", self.user_typing, methods=["POST"]),
                Route(f"{base}/leave", self.user_leaves, methods=["POST"]),
                Route(f"{base}/events", self.events, methods=["GET"]),
            ]
        return routes

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse(
            {
                "status": "ready",
                "backends": list(self.backends),
                "open_sessions": self.runtime.open_sessions,
            }
        )

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- the generic channel API ------------------------------------------------------------------

    def _conversation_id(self, request: Request) -> str:
        external = request.path_params["conversation"]
        if not _ID.match(external):
            raise BadRequest(
                422,
                "Invalid conversation id",
                "expected 1-128 characters among letters, digits and . _ ~ -",
                field="conversation",
            )
        return f"api:{external}"

    async def _feed(self, conversation_id: str, event: ev.Event) -> Response:
        runtime = self.running_runtime()
        if runtime is None:
            return problem(503, "Not ready", "the service is starting or stopping")
        conversation = await runtime.feed(conversation_id, event)
        return JSONResponse(_state(conversation_id, conversation), status_code=202)

    async def user_message(self, request: Request) -> Response:
        try:
            cid = self._conversation_id(request)
            body = await read_json_object(request, limit=self.config.server.max_body)
            text = _field(body, "text", str, "a string")
            message_id = _field(body, "message_id", str, "a string", required=False)
        except BadRequest as exc:
            return exc.response()
        return await self._feed(
            cid, ev.UserMessage(at=self.clock(), text=text, message_id=message_id)
        )

    async def user_typing(self, request: Request) -> Response:
        try:
            cid = self._conversation_id(request)
            body = await read_json_object(request, limit=self.config.server.max_body)
            typing = _field(body, "typing", bool, "a boolean")
        except BadRequest as exc:
            return exc.response()
        return await self._feed(cid, ev.UserTyping(at=self.clock(), typing=typing))

    async def user_leaves(self, request: Request) -> Response:
        try:
            cid = self._conversation_id(request)
        except BadRequest as exc:
            return exc.response()
        return await self._feed(cid, ev.UserLeft(at=self.clock()))

    async def conversation_state(self, request: Request) -> Response:
        try:
            cid = self._conversation_id(request)
        except BadRequest as exc:
            return exc.response()
        conversation = await self.runtime.get(cid)
        if conversation is None:
            return problem(404, "Not found", "no such conversation", field="conversation")
        return JSONResponse(_state(cid, conversation))

    async def events(self, request: Request) -> Response:
        try:
            cid = self._conversation_id(request)
        except BadRequest as exc:
            return exc.response()
        external = self.api.external_id(cid)
        return _SseResponse(self.api, external)


class _SseResponse(Response):
    """Server-sent events of one conversation's deliveries, until the client goes away.

    Written as a plain ASGI callable rather than a generator body: a client leaving mid-stream
    must not leave an abandoned async generator behind (an error under trio), and the listener is
    always removed.
    """

    media_type = "text/event-stream"

    def __init__(self, api: ApiChannel, external_id: str) -> None:
        # No super().__init__(): it would announce an empty body (content-length: 0).
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.api = api
        self.external_id = external_id

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        listener, deliveries = self.api.listen(self.external_id)
        try:
            with deliveries:
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                async with anyio.create_task_group() as task_group:

                    async def until_disconnect() -> None:
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        task_group.cancel_scope.cancel()

                    task_group.start_soon(until_disconnect)
                    await _frame(send, ": connected\n\n")
                    while True:
                        with anyio.move_on_after(SSE_KEEPALIVE) as idle:
                            item = await deliveries.receive()
                        if idle.cancelled_caught:
                            await _frame(send, ": keep-alive\n\n")
                            continue
                        data = json.dumps(item, ensure_ascii=False)
                        event_id = item.get("id") or ""
                        await _frame(
                            send, f"event: {item['type']}\nid: {event_id}\ndata: {data}\n\n"
                        )
        except OSError:
            pass  # the client went away while we wrote
        finally:
            self.api.forget(self.external_id, listener)


async def _frame(send: Any, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


def _field(
    body: Mapping[str, Any], name: str, kind: type[T], expected: str, *, required: bool = True
) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        got = "nothing" if value is None else type(value).__name__
        raise BadRequest(422, "Invalid body", f"expected {expected}, got {got}", field=name)
    return value


def _state(conversation_id: str, conversation: Conversation | None) -> dict[str, Any]:
    if conversation is None:
        return {"conversation": conversation_id.removeprefix("api:"), "state": None}
    return {
        "conversation": conversation_id.removeprefix("api:"),
        "state": conversation.state.value,
        "owner": conversation.owner,
        "agent_name": conversation.agent_name,
        "queue_position": conversation.queue_position,
    }


def create_app(config: Config, **options: Any) -> Starlette:
    """The ASGI app of a :class:`HandoffService` (its lifespan runs the runtime)."""
    return HandoffService(config, **options).app
