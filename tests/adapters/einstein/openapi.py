"""Validates Einstein runtime API traffic against the official OpenAPI spec (openapi-core).

Every request our client sends and every response the simulator returns goes through
:class:`RecordingTransport` during the tests; :meth:`SpecValidator.check` validates them all at the
end of each test. The only changes made to the spec are its ``servers`` (the simulator listens on
loopback, not on ``*.chatbots.sfdc.sh``) and its keys read as strings.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

#: Salesforce's official spec, kept beside the tests with its licence (``spec/README.md``).
SPEC_PATH = Path(__file__).resolve().parent / "spec" / "einstein-bot-api-v5_3_0.yml"
#: Paths the spec describes (everything else — the login endpoint, the control API — is not).
SPEC_PREFIXES = ("/v5.3.0/", "/status", "/versions")


@functools.cache
def _spec_dict() -> dict[str, Any]:
    with SPEC_PATH.open() as file:
        loaded: dict[str, Any] = _string_keys(yaml.safe_load(file))
    return loaded


def _string_keys(node: Any) -> Any:
    # The spec writes one status code unquoted (``200:`` under /versions): YAML reads an int, the
    # OpenAPI schema wants a string. JSON, OpenAPI's data model, has only string keys.
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


@functools.cache
def loopback_openapi() -> OpenAPI:
    """The spec served from any loopback port (built once: building costs ~0.3 s)."""
    spec = copy.deepcopy(_spec_dict())
    spec["servers"] = [{"url": "http://127.0.0.1:{port}", "variables": {"port": {"default": "80"}}}]
    return OpenAPI.from_dict(spec)


class _Request:
    def __init__(self, request: httpx.Request, body: bytes) -> None:
        self._url = urlsplit(str(request.url))
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(self._url.query)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return f"{self._url.scheme}://{self._url.netloc}"

    @property
    def path(self) -> str:
        return self._url.path

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


class _Response:
    def __init__(self, response: httpx.Response, body: bytes) -> None:
        self.status_code = response.status_code
        self.data = body
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")


@attrs.define
class Exchange:
    request: httpx.Request
    request_body: bytes
    response: httpx.Response
    response_body: bytes
    #: Set for requests a test sends on purpose against the spec (only the response is checked).
    invalid_request: bool = False


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real loopback HTTP (``httpx.AsyncHTTPTransport``) that keeps a copy of every exchange."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[Exchange] = []
        self.invalid_requests = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request_body = await request.aread()
        response = await self._inner.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        self.exchanges.append(
            Exchange(request, request_body, response, body, invalid_request=self.invalid_requests)
        )
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=body,
            request=request,
            extensions={k: v for k, v in response.extensions.items() if k == "http_version"},
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class SpecValidator:
    def __init__(self) -> None:
        self.openapi = loopback_openapi()

    def check(self, exchanges: list[Exchange]) -> int:
        """Validate every exchange with a spec path; return how many were validated."""
        errors: list[str] = []
        checked = 0
        for exchange in exchanges:
            path = exchange.request.url.path
            if not path.startswith(SPEC_PREFIXES):
                continue
            checked += 1
            request = _Request(exchange.request, exchange.request_body)
            response = _Response(exchange.response, exchange.response_body)
            where = f"{exchange.request.method} {path} → {exchange.response.status_code}"
            with warnings.catch_warnings():
                # openapi-core cannot check OAuth2 schemes (chatbotAuth) and warns; the bearer
                # header itself is asserted below.
                warnings.filterwarnings("ignore", message="Unsupported scheme type")
                # The spec itself uses allowEmptyValue (deprecated in OpenAPI 3.0.3).
                warnings.filterwarnings("ignore", message="Use of allowEmptyValue")
                if not exchange.invalid_request:
                    try:
                        self.openapi.validate_request(request)
                    except Exception as exc:
                        errors.append(f"request {where}: {_explain(exc)}")
                    if path.startswith("/v5.3.0/") and not exchange.request.headers.get(
                        "authorization", ""
                    ).startswith("Bearer "):
                        errors.append(f"request {where}: no Authorization: Bearer header")
                try:
                    self.openapi.validate_response(request, response)
                except Exception as exc:
                    errors.append(
                        f"response {where}: {_explain(exc)}\n  body: "
                        f"{exchange.response_body[:500]!r}"
                    )
        if errors:
            raise AssertionError("OpenAPI validation failed:\n" + "\n".join(errors))
        return checked


def _explain(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__
    while cause is not None:
        parts.append(f"{type(cause).__name__}: {cause}")
        for inner in getattr(cause, "schema_errors", ()) or ():
            parts.append(f"  - {getattr(inner, 'message', inner)}")
        cause = cause.__cause__
    return " / ".join(parts)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
