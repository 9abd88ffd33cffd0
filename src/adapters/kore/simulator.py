"""A simulator of the Kore.ai XO Platform side of BotKit, for tests and the demo.

It plays the platform and a tiny bot dialog:

* it sends signed webhooks (``token`` JWT) to a BotKit endpoint (``handoff serve``): the user's
  messages as ``on_user_message``, the bot's answers as ``on_bot_message``, and, when the user says
  the transfer phrase, ``on_agent_transfer`` with ``BotUserSession.miawMetaInfo``;
* it receives the calls BotKit makes back (``auth`` JWT checked): ``sendUserMessage`` (shown to the
  user), ``sendBotMessage`` (fed to the bot dialog), ``startAgentSession`` / ``clearAgentSession``
  (agent mode, reflected as ``agent_transfer`` on later webhooks), ``extendcallid``, ``skip*``.

Every webhook gets a new request id with its own URLs (``…/sendUserMessage/{requestId}``), as
Kore does. Two options make stale addresses fail (HTTP 410), so tests prove which one is used:
``rotate_requests`` retires a user's older request ids whenever a new webhook for that user is
sent, and ``request_ttl`` expires a request id that many seconds after it was issued or last
extended (``extendcallid``).

Control API (JSON):

* ``POST /control/config`` ``{"botkit_url": …, "transfer_phrase": …, "pre_chat": {…},
  "end_keyword": …, "rotate_requests": …, "request_ttl": …}``
* ``POST /control/users/{user}/messages`` ``{"text": …}``: the user types; answers with the BotKit
  endpoint's status and body, and the webhook's ``requestId``;
* ``POST /control/webhooks/{requestId}/retry``: the platform sends that webhook again, unchanged;
* ``GET /control/users/{user}/messages?after=N&wait=S``: what the user has been shown (long poll);
* ``GET /control/users/{user}``: agent mode and transcript; ``GET /control/calls``: every call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import httpx
import jwt
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handoff_core.policy import normalize_utterance

__all__ = ["KoreSimulator"]

CALL_KINDS = frozenset(
    {
        "sendUserMessage",
        "sendBotMessage",
        "startAgentSession",
        "clearAgentSession",
        "extendcallid",
        "skipUserMessage",
        "skipBotMessage",
    }
)


@attrs.define
class SimUser:
    user_id: str
    shown: list[dict[str, Any]] = attrs.field(factory=list)
    agent_mode: bool = False
    changed: anyio.Event = attrs.field(factory=anyio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class KoreSimulator:
    """The platform: ``.app`` is the ASGI app."""

    def __init__(
        self,
        *,
        bot_id: str = "st-simulated-bot",
        client_id: str = "cs-simulated-app",
        client_secret: str,
        algorithm: str = "HS256",
        botkit_url: str | None = None,
        prefix: str = "",
        transfer_phrase: str = "transfer me",
        pre_chat: dict[str, Any] | None = None,
        end_keyword: str | None = None,
        rotate_requests: bool = False,
        request_ttl: float | None = None,
    ) -> None:
        self.bot_id = bot_id
        self.client_id = client_id
        self._secret = client_secret
        self.algorithm = algorithm
        self.botkit_url = botkit_url
        self.prefix = prefix
        self.transfer_phrase = transfer_phrase
        self.pre_chat = dict(pre_chat or {})
        self.end_keyword = end_keyword
        self.rotate_requests = rotate_requests
        self.request_ttl = request_ttl
        self.users: dict[str, SimUser] = {}
        self.requests: dict[str, str] = {}  # request id → user id
        self.issued: dict[str, float] = {}  # request id → when issued or last extended
        self.retired: set[str] = set()
        self.calls: list[dict[str, Any]] = []
        #: Calls refused because their request id was retired or expired.
        self.refused: list[dict[str, Any]] = []
        self.webhooks_sent: list[dict[str, Any]] = []
        self._bodies: dict[str, tuple[str, dict[str, Any]]] = {}
        self.base_url = ""
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route(
                    "/api/botsdk/stream/{bot_id}/{kind}/{request_id}",
                    self._platform_call,
                    methods=["POST"],
                ),
                Route("/control/config", self._configure, methods=["POST"]),
                Route(
                    "/control/webhooks/{request_id}/retry", self._retry_webhook, methods=["POST"]
                ),
                Route("/control/users/{user_id}/messages", self._user_says, methods=["POST"]),
                Route("/control/users/{user_id}/messages", self._user_reads, methods=["GET"]),
                Route("/control/users/{user_id}", self._user_state, methods=["GET"]),
                Route("/control/calls", self._calls, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def __repr__(self) -> str:
        return f"KoreSimulator(bot_id={self.bot_id!r}, client_id={self.client_id!r})"

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=30) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def user(self, user_id: str) -> SimUser:
        if user_id not in self.users:
            self.users[user_id] = SimUser(user_id)
        return self.users[user_id]

    # -- webhooks to BotKit -----------------------------------------------------------------------

    def token(self, *, expires_in: float = 60, client_id: str | None = None) -> str:
        claims = {"appId": client_id or self.client_id, "exp": int(time.time() + expires_in)}
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def payload(self, user_id: str, message: str | None, **extra: Any) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        self.requests[request_id] = user_id
        self.issued[request_id] = time.time()
        base = f"{self.base_url}/api/botsdk/stream/{self.bot_id}"
        user = self.user(user_id)
        bot_user_session: dict[str, Any] = {
            "lastMessage": {"channel": "rtm", "messagePayload": {"message": {"body": message}}}
        }
        meta: dict[str, Any] = {}
        if self.pre_chat:
            meta["preChatInfo"] = dict(self.pre_chat)
        if self.end_keyword:
            meta["endChatShortHandCommand"] = self.end_keyword
        if meta:
            bot_user_session["miawMetaInfo"] = meta
        body: dict[str, Any] = {
            "requestId": request_id,
            "botId": self.bot_id,
            "baseUrl": base,
            "sendUserMessageUrl": f"{base}/sendUserMessage/{request_id}",
            "sendBotMessageUrl": f"{base}/sendBotMessage/{request_id}",
            "callbackUrl": f"{base}/serviceCallback/{request_id}",
            "context": {
                "session": {
                    "UserContext": {
                        "_id": user_id,
                        "firstName": "Kore",
                        "lastName": "User",
                        "emailId": f"{user_id}@example.com",
                    },
                    "BotUserSession": bot_user_session,
                    "opts": {"userId": user_id, "streamId": self.bot_id},
                }
            },
            "channel": {"channelInfos": {"from": user_id, "type": "rtm"}},
            "agent_transfer": user.agent_mode,
        }
        if message is not None:
            body["message"] = message
        body.update(extra)
        return body

    async def send_webhook(self, event_name: str, body: dict[str, Any]) -> httpx.Response:
        if self.botkit_url is None or self._client is None:
            raise RuntimeError(
                "the simulator has no BotKit URL (POST /control/config) or is not running"
            )
        url = f"{self.botkit_url.rstrip('/')}{self.prefix}/sdk/bots/{self.bot_id}/{event_name}"
        request_id = body.get("requestId")
        user_id = self.requests.get(request_id) if isinstance(request_id, str) else None
        if isinstance(request_id, str) and request_id not in self._bodies:
            self._bodies[request_id] = (event_name, body)
            if self.rotate_requests and user_id is not None:
                # This request is now the user's live one; the older ones stop working.
                self.retired.update(
                    r for r, u in self.requests.items() if u == user_id and r != request_id
                )
        self.webhooks_sent.append({"event": event_name, "requestId": request_id})
        return await self._client.post(url, json=body, headers={"token": self.token()})

    async def retry(self, request_id: str) -> httpx.Response:
        """Send the webhook of ``request_id`` again, as the platform does after a timeout."""
        event_name, body = self._bodies[request_id]
        return await self.send_webhook(event_name, body)

    def _stale(self, request_id: str) -> str | None:
        if request_id in self.retired:
            return "request superseded"
        issued = self.issued.get(request_id, 0.0)
        if self.request_ttl is not None and time.time() - issued > self.request_ttl:
            return "request expired"
        return None

    async def _bot_answers(self, user_id: str, text: str) -> None:
        said = normalize_utterance(text)
        if said == normalize_utterance(self.transfer_phrase):
            await self.send_webhook(
                "on_bot_message", self.payload(user_id, "Let me connect you to an agent.")
            )
            await self.send_webhook("on_agent_transfer", self.payload(user_id, None))
        elif said in ("hi", "hello"):
            await self.send_webhook(
                "on_bot_message", self.payload(user_id, "Hello! I am the Kore demo bot.")
            )
        else:
            await self.send_webhook("on_bot_message", self.payload(user_id, f"You said: {text}"))

    # -- calls from BotKit ------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("auth")
        if not token:
            return False
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[self.algorithm], options={"require": ["exp"]}
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("appId") == self.client_id)

    async def _platform_call(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        request_id = request.path_params["request_id"]
        if not self._authorized(request):
            return JSONResponse(
                {"errors": [{"msg": "Invalid auth", "code": 4002}]}, status_code=401
            )
        if kind not in CALL_KINDS:
            return JSONResponse({"errors": [{"msg": f"unknown call {kind}"}]}, status_code=404)
        user_id = self.requests.get(request_id)
        if user_id is None:
            return JSONResponse({"errors": [{"msg": "unknown requestId"}]}, status_code=404)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"errors": [{"msg": "Invalid JSON"}]}, status_code=400)
        message = body.get("message") if isinstance(body, dict) else None
        stale = self._stale(request_id)
        if stale is not None:
            self.refused.append(
                {"kind": kind, "requestId": request_id, "message": message, "reason": stale}
            )
            self.user(user_id).notify()
            return JSONResponse({"errors": [{"msg": stale}]}, status_code=410)
        if kind == "extendcallid":
            self.issued[request_id] = time.time()
        self.calls.append(
            {"kind": kind, "requestId": request_id, "userId": user_id, "message": message}
        )
        user = self.user(user_id)
        task = None
        if kind == "sendUserMessage":
            user.shown.append({"text": message, "at": time.time()})
        elif kind == "startAgentSession":
            user.agent_mode = True
        elif kind == "clearAgentSession":
            user.agent_mode = False
        elif kind == "sendBotMessage" and isinstance(message, str):
            # Answer the call first, then let the bot speak (as the platform does).
            task = BackgroundTask(self._bot_answers, user_id, message)
        user.notify()
        return JSONResponse({"status": "ok"}, background=task)

    # -- control ----------------------------------------------------------------------------------

    def _remember_base(self, request: Request) -> None:
        if not self.base_url:
            self.base_url = str(request.base_url).rstrip("/")

    async def _configure(self, request: Request) -> Response:
        self._remember_base(request)
        body = await request.json()
        for key in (
            "botkit_url",
            "transfer_phrase",
            "end_keyword",
            "prefix",
            "rotate_requests",
            "request_ttl",
        ):
            if key in body:
                setattr(self, key, body[key])
        if "pre_chat" in body:
            self.pre_chat = dict(body["pre_chat"] or {})
        return JSONResponse({"botkit_url": self.botkit_url, "bot_id": self.bot_id})

    async def _user_says(self, request: Request) -> Response:
        self._remember_base(request)
        user_id = request.path_params["user_id"]
        body = await request.json()
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return JSONResponse({"detail": "text: expected a string"}, status_code=422)
        body = self.payload(user_id, text)
        response = await self.send_webhook("on_user_message", body)
        return _answer(response, body["requestId"])

    async def _retry_webhook(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        if request_id not in self._bodies:
            return JSONResponse({"detail": f"no webhook {request_id!r} was sent"}, status_code=404)
        return _answer(await self.retry(request_id), request_id)

    async def _user_reads(self, request: Request) -> Response:
        user = self.user(request.path_params["user_id"])
        after = int(request.query_params.get("after", "0"))
        wait = float(request.query_params.get("wait", "0"))
        with anyio.move_on_after(wait):
            while len(user.shown) <= after:
                await user.changed.wait()
        return JSONResponse(
            {"messages": user.shown[after:], "next": len(user.shown), "agent_mode": user.agent_mode}
        )

    async def _user_state(self, request: Request) -> Response:
        user = self.user(request.path_params["user_id"])
        return JSONResponse({"agent_mode": user.agent_mode, "messages": user.shown})

    async def _calls(self, request: Request) -> Response:
        return JSONResponse(
            {"calls": self.calls, "refused": self.refused, "webhooks": self.webhooks_sent}
        )


def _answer(response: httpx.Response, request_id: str) -> Response:
    """The BotKit endpoint's answer to a webhook, for the control API."""
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    return JSONResponse({"status": response.status_code, "body": answer, "requestId": request_id})
