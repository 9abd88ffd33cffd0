"""A simulator of the Einstein Bots runtime API v5.x (and of the login endpoint's JWT bearer flow).

Serves the three session operations, ``/status``, ``/versions`` and
``/services/oauth2/token`` with the documented shapes, checks what it receives as strictly as the
spec does (required headers, ``additionalProperties: false`` bodies, increasing ``sequenceId``,
the echoed ``X-Runtime-CRC``, a known bearer token) and answers 4xx with the spec's ``Error`` body.

Bots follow scriptable dialogs (:class:`Dialog`): a greeting (with ``{Variable}`` placeholders), a
menu of choices, phrases that escalate to an agent or to another bot, a reply to a failed transfer.
Faults (4xx/5xx/429 with ``Retry-After``) are injected with :meth:`EinsteinSimulator.fail` or the
control API:

* ``GET  /_sim/state``                 — sessions, transcripts, transfer reports
* ``POST /_sim/faults``                — ``{"status": 503, "count": 1, "retryAfter": 1,
  "operation": "start"|"continue"|"end"|null}``
* ``PUT  /_sim/bots/{botId}``          — replace a bot's dialog (JSON of :class:`Dialog`)
* ``POST /_sim/reset``                 — forget sessions, faults and records

Behaviour the documentation leaves open is chosen here and marked: a repeated ``sequenceId`` gets
the same answer again (idempotent retry), an older one is refused with 400.
"""

from __future__ import annotations

import json
import string
import time
import uuid
import zlib
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs

import attrs
import cattrs
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from handoff_core.errors import RemoteProtocolError

from . import wire

__all__ = [
    "BILLING_BOT_ID",
    "DEFAULT_ORG_ID",
    "MAIN_BOT_ID",
    "ChoiceRule",
    "Dialog",
    "EinsteinSimulator",
    "Fault",
]

MAIN_BOT_ID: Final = "0XxSIM0000000001AA"
BILLING_BOT_ID: Final = "0XxSIM0000000002AA"
DEFAULT_ORG_ID: Final = "00DSIM0000000001AA"
DEFAULT_QUEUE_ID: Final = "00GSIM0000000001AA"
API_VERSIONS: Final = ("5.0.0", "5.1.0", "5.2.0", "5.3.0")
MAX_BODY: Final = 1 << 20


@attrs.define(kw_only=True)
class ChoiceRule:
    """A menu entry and what choosing it does: ``reply:<text>``, ``escalate``, ``bot:<botId>``,
    ``end``."""

    label: str
    action: str


@attrs.define(kw_only=True)
class Dialog:
    """What one simulated bot says. Texts may use ``{VariableName}`` placeholders."""

    name: str = "Astro"
    greeting: list[str] = attrs.field(
        factory=lambda: ["Hi, I'm {BotName}, a simulated Einstein bot."]
    )
    menu_prompt: str | None = "What can I help you with?"
    menu: list[ChoiceRule] = attrs.field(factory=list)
    widget: str = "menu"
    #: Phrases (contained in the user's text, case-insensitive) that escalate to an agent.
    escalate_phrases: list[str] = attrs.field(factory=lambda: ["transfer", "escalate"])
    escalate_text: str = "One moment, I'm transferring you to an agent."
    #: The escalate message's targets: ``[type, value]`` pairs.
    targets: list[list[str]] = attrs.field(factory=lambda: [[wire.TARGET_QUEUE, DEFAULT_QUEUE_ID]])
    #: Phrase → bot id: escalate to another bot.
    bot_phrases: dict[str, str] = attrs.field(factory=dict)
    bot_transfer_text: str = "I'm handing you over to a colleague bot."
    end_phrases: list[str] = attrs.field(factory=lambda: ["bye"])
    #: Phrases after which the bot ends its session with ``reason: Error``.
    crash_phrases: list[str] = attrs.field(factory=lambda: ["crash"])
    echo: str = "You said: {text}"
    transfer_failed_reply: str = (
        "Sorry, nobody could take the chat ({reason}). I'm still here: how else can I help?"
    )
    #: Variables every new session starts with (``{name, type, value}``).
    variables: list[dict[str, Any]] = attrs.field(factory=list)


def default_bots() -> dict[str, Dialog]:
    main = Dialog(
        name="Astro",
        menu=[
            ChoiceRule(label="Order status", action="reply:Your order {OrderNumber} ships today."),
            ChoiceRule(label="Billing question", action=f"bot:{BILLING_BOT_ID}"),
            ChoiceRule(label="Talk to a person", action="escalate"),
        ],
        bot_phrases={"billing": BILLING_BOT_ID},
        variables=[
            {"name": "OrderNumber", "type": "text", "value": "A-1001"},
            {"name": "OrderTotal", "type": "money", "value": "USD 42.50"},
            {"name": "VIP", "type": "boolean", "value": True},
        ],
    )
    billing = Dialog(
        name="Penny",
        greeting=["Hi, I'm {BotName} from billing. I see order {OrderNumber} ({OrderTotal})."],
        menu_prompt=None,
        bot_phrases={"orders": MAIN_BOT_ID},
    )
    return {MAIN_BOT_ID: main, BILLING_BOT_ID: billing}


@attrs.define(kw_only=True)
class Fault:
    status: int
    count: int = 1
    retry_after: float | None = None
    #: ``start``, ``continue``, ``end`` or ``None`` (any session operation).
    operation: str | None = None


@attrs.define(kw_only=True)
class SimSession:
    id: str
    bot_id: str
    external_key: str
    variables: dict[str, dict[str, Any]]
    referrers: list[dict[str, str]]
    crc: str
    last_seq: int | None = None
    last_answer: dict[str, Any] | None = None
    choices: list[dict[str, Any]] = attrs.field(factory=list)
    choice_actions: dict[str, str] = attrs.field(factory=dict)
    escalate_id: str | None = None
    ended: str | None = None
    #: What the client sent (init text, messages, the end), in order.
    received: list[dict[str, Any]] = attrs.field(factory=list)


class _Refused(Exception):
    def __init__(
        self, status: int, error: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after


class _SafeFormat(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


_CONVERTER: Final = cattrs.Converter(forbid_extra_keys=True)


class EinsteinSimulator:
    """The simulated runtime API and login endpoint; ``.app`` is the ASGI app.

    ``tokens``: bearer tokens accepted besides the ones the login endpoint mints (``None``: any
    non-empty token). ``jwt_public_key``: verify assertions' RS256 signatures with it (else only
    their claims are checked).
    """

    def __init__(
        self,
        *,
        org_id: str = DEFAULT_ORG_ID,
        bots: Mapping[str, Dialog] | None = None,
        tokens: set[str] | None = None,
        jwt_public_key: str | bytes | None = None,
        token_ttl: float = 3600.0,
        strict: bool = True,
        clock: Any = time.time,
    ) -> None:
        self.org_id = org_id
        self.bots: dict[str, Dialog] = dict(bots if bots is not None else default_bots())
        self.tokens = tokens
        self.jwt_public_key = jwt_public_key
        self.token_ttl = token_ttl
        self.strict = strict
        self.clock = clock
        self.sessions: dict[str, SimSession] = {}
        self.faults: list[Fault] = []
        self.minted: dict[str, float] = {}
        #: ``(session id, message type, inReplyToMessageId, reason)`` of every transfer report.
        self.reports: list[tuple[str, str, str | None, str | None]] = []
        #: Every request to the runtime API: ``(method, path, status)``.
        self.requests: list[tuple[str, str, int]] = []
        self.app = Starlette(routes=self._routes())

    # -- the Python control API -------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        operation: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching session calls with ``status``."""
        self.faults.append(
            Fault(status=status, count=count, retry_after=retry_after, operation=operation)
        )

    def reset(self) -> None:
        self.sessions.clear()
        self.faults.clear()
        self.reports.clear()
        self.requests.clear()

    def state(self) -> dict[str, Any]:
        return {
            "sessions": [
                {
                    "id": s.id,
                    "botId": s.bot_id,
                    "externalSessionKey": s.external_key,
                    "ended": s.ended,
                    "referrers": s.referrers,
                    "variables": list(s.variables.values()),
                    "received": s.received,
                }
                for s in self.sessions.values()
            ],
            "reports": [
                {"sessionId": sid, "type": kind, "inReplyToMessageId": reply, "reason": reason}
                for sid, kind, reply, reason in self.reports
            ],
            "faults": [attrs.asdict(f) for f in self.faults],
            "requests": len(self.requests),
        }

    # -- routes -----------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/status", self._status, methods=["GET"]),
            Route("/versions", self._versions, methods=["GET"]),
            Route("/services/oauth2/token", self._token, methods=["POST"]),
            Route("/v{version}/bots/{bot_id}/sessions", self._start, methods=["POST"]),
            Route("/v{version}/sessions/{session_id}/messages", self._continue, methods=["POST"]),
            Route("/v{version}/sessions/{session_id}", self._end, methods=["DELETE"]),
            Route("/_sim/state", self._control_state, methods=["GET"]),
            Route("/_sim/faults", self._control_faults, methods=["POST"]),
            Route("/_sim/bots/{bot_id}", self._control_bot, methods=["PUT"]),
            Route("/_sim/reset", self._control_reset, methods=["POST"]),
        ]

    async def _status(self, request: Request) -> Response:
        return JSONResponse({"status": "UP"})

    async def _versions(self, request: Request) -> Response:
        return JSONResponse(
            {"versions": [{"versionNumber": v, "status": "ACTIVE"} for v in API_VERSIONS]}
        )

    async def _token(self, request: Request) -> Response:
        # Parsed by hand: Starlette's form parser needs python-multipart, an extra dependency.
        form = parse_qs((await request.body()).decode("latin-1"))
        grant = form.get("grant_type", [None])[0]
        assertion = form.get("assertion", [None])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                status_code=400,
            )
        # Expiry is checked against the simulator's clock (tests move it), not PyJWT's.
        options: jwt.types.Options = {
            "verify_exp": False,
            "verify_aud": False,
            "require": ["iss", "sub", "aud", "exp"],
        }
        try:
            if self.jwt_public_key is not None:
                claims = jwt.decode(
                    assertion, self.jwt_public_key, algorithms=["RS256"], options=options
                )
            else:
                claims = jwt.decode(assertion, options={**options, "verify_signature": False})
            if not isinstance(claims["exp"], int | float) or claims["exp"] < self.clock():
                raise jwt.ExpiredSignatureError("the assertion expired")
        except jwt.PyJWTError as exc:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": f"invalid assertion: {exc}"},
                status_code=400,
            )
        token = f"sim-{uuid.uuid4().hex}"
        self.minted[token] = self.clock() + self.token_ttl
        return JSONResponse(
            {
                "access_token": token,
                "scope": "chatbot_api",
                "instance_url": "https://simulated.my.salesforce.com",
                "id": f"https://login.salesforce.com/id/{self.org_id}/{claims['sub']}",
                "token_type": "Bearer",
            }
        )

    async def _control_state(self, request: Request) -> Response:
        return JSONResponse(self.state())

    async def _control_faults(self, request: Request) -> Response:
        try:
            data = await request.json()
            fault = Fault(
                status=int(data["status"]),
                count=int(data.get("count", 1)),
                retry_after=data.get("retryAfter"),
                operation=data.get("operation"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad fault: {exc}"}, status_code=400)
        self.faults.append(fault)
        return JSONResponse({"faults": len(self.faults)})

    async def _control_bot(self, request: Request) -> Response:
        try:
            dialog = _CONVERTER.structure(await request.json(), Dialog)
        except (ValueError, cattrs.BaseValidationError) as exc:
            return JSONResponse({"error": f"bad dialog: {exc}"}, status_code=400)
        self.bots[request.path_params["bot_id"]] = dialog
        return JSONResponse({"bots": sorted(self.bots)})

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"reset": True})

    # -- the session operations -------------------------------------------------------------------

    async def _start(self, request: Request) -> Response:
        return await self._operation(request, "start")

    async def _continue(self, request: Request) -> Response:
        return await self._operation(request, "continue")

    async def _end(self, request: Request) -> Response:
        return await self._operation(request, "end")

    async def _operation(self, request: Request, operation: str) -> Response:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        try:
            status, body, headers = await self._handle(request, operation)
        except _Refused as refused:
            status, headers = refused.status, {}
            body = wire.error_body(
                refused.status,
                refused.error,
                refused.message,
                path=request.url.path,
                request_id=request_id,
                timestamp_ms=int(self.clock() * 1000),
            )
            if refused.retry_after is not None:
                headers["Retry-After"] = _seconds(refused.retry_after)
        self.requests.append((request.method, request.url.path, status))
        headers["X-Request-ID"] = request_id
        return JSONResponse(body, status_code=status, headers=headers)

    def _take_fault(self, operation: str) -> Fault | None:
        for fault in self.faults:
            if fault.operation in (None, operation):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _handle(
        self, request: Request, operation: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        version = request.path_params["version"]
        if version not in API_VERSIONS:
            raise _Refused(404, "NotFoundError", f"unknown API version v{version}")
        self._check_auth(request)
        fault = self._take_fault(operation)
        if fault is not None:
            raise _Refused(
                fault.status,
                _ERROR_NAMES.get(fault.status, "Error"),
                f"simulated fault {fault.status}",
                retry_after=fault.retry_after,
            )
        org = request.headers.get("x-org-id")
        if not org:
            raise _Refused(400, "BadRequestError", "X-Org-Id: required header missing")
        if org != self.org_id:
            raise _Refused(403, "ForbiddenError", f"X-Org-Id: unknown org {org}")
        if self.strict and not request.headers.get("x-request-id"):
            raise _Refused(400, "BadRequestError", "X-Request-ID: required header missing")
        if operation == "start":
            return await self._start_session(request)
        session = self.sessions.get(request.path_params["session_id"])
        if session is None or session.ended is not None:
            raise _Refused(404, "NotFoundError", "session not found")
        crc = request.headers.get("x-runtime-crc")
        if crc is not None and crc != session.crc:
            raise _Refused(
                400, "BadRequestError", "X-Runtime-CRC: does not match the last response's"
            )
        if operation == "end":
            return self._end_session(request, session)
        return await self._continue_session(request, session)

    def _check_auth(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Refused(401, "UnauthorizedError", "Access bearer token is missing or invalid")
        expires = self.minted.get(token)
        if expires is not None:
            if expires < self.clock():
                raise _Refused(401, "UnauthorizedError", "Access bearer token expired")
            return
        if self.tokens is not None and token not in self.tokens:
            raise _Refused(401, "UnauthorizedError", "Access bearer token is missing or invalid")

    async def _json(self, request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise _Refused(400, "BadRequestError", "body: larger than 1 MiB")
        try:
            return json.loads(raw)
        except ValueError:
            raise _Refused(400, "BadRequestError", "body: not valid JSON") from None

    async def _start_session(self, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        bot_id = request.path_params["bot_id"]
        dialog = self.bots.get(bot_id)
        if dialog is None:
            raise _Refused(404, "NotFoundError", f"bot {bot_id} not found")
        try:
            envelope = wire.structure_request(await self._json(request), wire.InitEnvelope)
        except RemoteProtocolError as exc:
            raise _Refused(400, "BadRequestError", exc.message) from None
        variables = {v["name"]: dict(v) for v in dialog.variables}
        for variable in envelope.variables or ():
            variables[variable.name] = {
                "name": variable.name,
                "type": variable.type,
                "value": variable.value,
            }
        variables["BotName"] = {"name": "BotName", "type": "text", "value": dialog.name}
        session = SimSession(
            id=str(uuid.uuid4()),
            bot_id=bot_id,
            external_key=envelope.external_session_key,
            variables=variables,
            referrers=[{"type": r.type, "value": r.value} for r in envelope.referrers or ()],
            crc=_crc(),
        )
        self.sessions[session.id] = session
        text = envelope.message.text if envelope.message else None
        session.received.append({"type": "init", "text": text})
        messages = [self._text(self._fill(line, session)) for line in dialog.greeting]
        reply = self._reply_to_text(session, dialog, text) if text else None
        messages.extend(reply if reply else self._menu(session, dialog))
        body = self._envelope(request, session, messages, envelope.response_options, [])
        body = {"sessionId": session.id, **body}
        return 200, body, {"X-Runtime-CRC": session.crc, "X-Bot-Mode": "default"}

    async def _continue_session(
        self, request: Request, session: SimSession
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            envelope = wire.structure_request(await self._json(request), wire.ContinueEnvelope)
        except RemoteProtocolError as exc:
            raise _Refused(400, "BadRequestError", exc.message) from None
        message = envelope.message
        if session.last_seq is not None and message.sequence_id <= session.last_seq:
            if message.sequence_id == session.last_seq and session.last_answer is not None:
                # Simulator's choice (undocumented): a retried sequenceId gets the same answer.
                return 200, session.last_answer, {"X-Runtime-CRC": session.crc}
            raise _Refused(
                400,
                "BadRequestError",
                f"sequenceId: {message.sequence_id} is not greater than {session.last_seq}",
            )
        dialog = self.bots[session.bot_id]
        messages = self._answer(session, dialog, message)
        session.last_seq = message.sequence_id
        session.crc = _crc()
        body = self._envelope(
            request, session, messages, envelope.response_options, [message.sequence_id]
        )
        session.last_answer = body
        return 200, body, {"X-Runtime-CRC": session.crc}

    def _end_session(
        self, request: Request, session: SimSession
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        reason = request.headers.get("x-session-end-reason")
        if reason not in wire.END_REASONS:
            raise _Refused(
                400,
                "BadRequestError",
                f"X-Session-End-Reason: expected one of {list(wire.END_REASONS)}, got {reason!r}",
            )
        session.ended = reason
        session.received.append({"type": "end", "reason": reason})
        ended = {
            "type": "sessionEnded",
            "id": str(uuid.uuid4()),
            "reason": "ClientRequest",
            "schedule": {"responseDelayMilliseconds": 0},
        }
        body = self._envelope(request, session, [ended], None, [])
        return 200, body, {"X-Runtime-CRC": session.crc}

    # -- the dialog -------------------------------------------------------------------------------

    def _answer(
        self, session: SimSession, dialog: Dialog, message: wire.RequestMessage
    ) -> list[dict[str, Any]]:
        match message:
            case wire.TextRequest():
                session.received.append({"type": "text", "text": message.text})
                return self._reply_to_text(session, dialog, message.text) or [
                    self._text(self._fill(dialog.echo, session, text=message.text))
                ]
            case wire.ChoiceRequest():
                session.received.append(
                    {
                        "type": "choice",
                        "choiceId": message.choice_id,
                        "choiceIndex": message.choice_index,
                    }
                )
                choice_id = message.choice_id
                if choice_id is None and message.choice_index is not None:
                    index = message.choice_index - 1
                    if 0 <= index < len(session.choices):
                        choice_id = session.choices[index]["id"]
                action = session.choice_actions.get(choice_id or "")
                if action is None:
                    raise _Refused(
                        400, "BadRequestError", f"choiceId: {choice_id!r} is not a pending choice"
                    )
                return self._act(session, dialog, action)
            case wire.TransferSucceededRequest():
                self._check_reply(session, message.in_reply_to_message_id)
                self.reports.append(
                    (session.id, "transferSucceeded", message.in_reply_to_message_id, None)
                )
                session.received.append({"type": "transferSucceeded"})
                session.escalate_id = None
                return []  # the bot's output after a success is empty (docs)
            case wire.TransferFailedRequest():
                self._check_reply(session, message.in_reply_to_message_id)
                self.reports.append(
                    (session.id, "transferFailed", message.in_reply_to_message_id, message.reason)
                )
                session.received.append(
                    {
                        "type": "transferFailed",
                        "reason": message.reason,
                        "description": message.description,
                    }
                )
                session.escalate_id = None
                text = self._fill(dialog.transfer_failed_reply, session, reason=message.reason)
                return [self._text(text), *self._menu(session, dialog)]
            case wire.SetVariablesRequest():
                for v in message.variables:
                    session.variables[v.name] = {"name": v.name, "type": v.type, "value": v.value}
                session.received.append({"type": "setVariables"})
                return []
            case wire.RedirectRequest():
                session.received.append({"type": "redirect", "dialogId": message.dialog_id})
                return [self._text(f"Redirected to {message.dialog_id}.")]
        raise _Refused(400, "BadRequestError", "message: unsupported type")

    def _check_reply(self, session: SimSession, in_reply_to: str | None) -> None:
        if session.escalate_id is None:
            raise _Refused(400, "BadRequestError", "no escalation is pending in this session")
        if in_reply_to is not None and in_reply_to != session.escalate_id:
            raise _Refused(
                400,
                "BadRequestError",
                f"inReplyToMessageId: {in_reply_to} is not the escalate message",
            )

    def _reply_to_text(
        self, session: SimSession, dialog: Dialog, text: str
    ) -> list[dict[str, Any]] | None:
        said = text.strip().casefold()
        for choice in session.choices:
            if choice["label"].casefold() == said:
                return self._act(session, dialog, session.choice_actions[choice["id"]])
        for phrase, bot_id in dialog.bot_phrases.items():
            if phrase.casefold() in said:
                return self._act(session, dialog, f"bot:{bot_id}")
        if any(phrase.casefold() in said for phrase in dialog.escalate_phrases):
            return self._act(session, dialog, "escalate")
        if any(phrase.casefold() in said for phrase in dialog.end_phrases):
            return self._act(session, dialog, "end")
        if any(phrase.casefold() in said for phrase in dialog.crash_phrases):
            session.ended = "Error"
            return [{"type": "sessionEnded", "id": str(uuid.uuid4()), "reason": "Error"}]
        return None

    def _act(self, session: SimSession, dialog: Dialog, action: str) -> list[dict[str, Any]]:
        kind, _, argument = action.partition(":")
        if kind == "reply":
            return [self._text(self._fill(argument, session)), *self._menu(session, dialog)]
        if kind == "escalate":
            return [
                self._text(dialog.escalate_text),
                self._escalate(session, [{"type": t, "value": v} for t, v in dialog.targets]),
            ]
        if kind == "bot":
            return [
                self._text(dialog.bot_transfer_text),
                self._escalate(session, [{"type": wire.TARGET_BOT, "value": argument}]),
            ]
        if kind == "end":
            session.ended = "Action"
            return [
                self._text("Goodbye!"),
                {"type": "sessionEnded", "id": str(uuid.uuid4()), "reason": "Action"},
            ]
        raise _Refused(422, "RequestProcessingException", f"dialog action {action!r} unknown")

    def _escalate(self, session: SimSession, targets: list[dict[str, str]]) -> dict[str, Any]:
        session.escalate_id = str(uuid.uuid4())
        session.choices, session.choice_actions = [], {}
        return {
            "type": "escalate",
            "id": session.escalate_id,
            "targets": targets,
            "schedule": {"responseDelayMilliseconds": 0},
        }

    def _menu(self, session: SimSession, dialog: Dialog) -> list[dict[str, Any]]:
        session.choices, session.choice_actions = [], {}
        if not dialog.menu:
            return []
        for number, rule in enumerate(dialog.menu, 1):
            choice_id = str(uuid.uuid4())
            session.choices.append({"label": rule.label, "alias": str(number), "id": choice_id})
            session.choice_actions[choice_id] = rule.action
        messages = [self._text(dialog.menu_prompt)] if dialog.menu_prompt else []
        messages.append(
            {
                "type": "choices",
                "id": str(uuid.uuid4()),
                "widget": dialog.widget,
                "choices": list(session.choices),
                "schedule": {"responseDelayMilliseconds": 0},
            }
        )
        return messages

    @staticmethod
    def _text(text: str) -> dict[str, Any]:
        return {
            "type": "text",
            "id": str(uuid.uuid4()),
            "text": text,
            "schedule": {"responseDelayMilliseconds": 0},
        }

    @staticmethod
    def _fill(template: str, session: SimSession, **extra: str) -> str:
        values = _SafeFormat({name: str(v.get("value")) for name, v in session.variables.items()})
        values.update(extra)
        return string.Formatter().vformat(template, (), values)

    def _envelope(
        self,
        request: Request,
        session: SimSession,
        messages: list[dict[str, Any]],
        options: wire.ResponseOptions | None,
        processed: list[int],
    ) -> dict[str, Any]:
        base = f"{request.url.scheme}://{request.url.netloc}"
        version = request.path_params["version"]
        body: dict[str, Any] = {
            "botVersion": "0X9SIM0000000001AA",
            "processedSequenceIds": processed,
            "messages": messages,
            "_links": {
                "self": {"href": base + request.url.path},
                "messages": {"href": f"{base}/v{version}/sessions/{session.id}/messages"},
                "session": {"href": f"{base}/v{version}/sessions/{session.id}"},
            },
        }
        if options is not None and options.variables is not None and options.variables.include:
            names = set(options.variables.filter or ())
            body["variables"] = [
                v for name, v in session.variables.items() if not names or name in names
            ]
        return body


_ERROR_NAMES: Final = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    422: "RequestProcessingException",
    423: "ServerBusyError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _crc() -> str:
    return str(zlib.crc32(uuid.uuid4().bytes))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
