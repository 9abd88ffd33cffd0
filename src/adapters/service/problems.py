"""RFC 9457 problem responses and bounded JSON body reading, shared by every inbound route.

A peer's bad request is answered with a 4xx ``application/problem+json`` body naming the field,
never a 500, and nothing is applied before the whole request has been validated.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["MAX_BODY", "BadRequest", "problem", "read_json_object"]

#: Bodies larger than this are refused with 413 before they are parsed.
MAX_BODY = 1024 * 1024
#: Up to this many bytes of a too-large body are read and discarded before answering 413.
DRAIN_LIMIT = 16 * 1024 * 1024


class BadRequest(Exception):
    """A request we refuse: becomes a problem response with ``status``."""

    def __init__(self, status: int, title: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field

    def response(self) -> JSONResponse:
        return problem(self.status, self.title, self.detail, field=self.field)


def problem(
    status: int, title: str, detail: str, *, field: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if field is not None:
        body["field"] = field
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


async def read_json_object(request: Request, *, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request body as a JSON object, read at most ``limit`` bytes; else :class:`BadRequest`."""
    too_large = BadRequest(413, "Payload too large", f"the body exceeds {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_LIMIT:
            raise too_large
        if size <= limit:
            chunks.append(chunk)
        # else: read on and discard, so a client that sends the whole body before reading the
        # answer (most do) gets the 413 instead of a reset connection.
    if size > limit:
        raise too_large
    raw = b"".join(chunks)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(400, "Invalid JSON", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "Invalid JSON", "the body nests too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(
            422, "Invalid body", f"expected a JSON object, got {type(data).__name__}", field="$"
        )
    return data
