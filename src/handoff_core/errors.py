"""Errors, typed by whose fault they are (as in h11 and wsproto).

* :class:`LocalProtocolError`: the caller (our runtime, an embedding application, a bot adapter)
  asked for something the conversation cannot do in its current state, or built an invalid event.
* :class:`RemoteProtocolError`: a peer (agent backend, bot platform) sent something that breaks its
  protocol. Adapters raise it while parsing foreign payloads; the core raises it when a backend
  event is out of order.

Both leave the conversation exactly as it was. Both may carry a ``hint``: the event the runtime
should feed instead to recover (wsproto's ``event_hint``), e.g. a transfer rejection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handoff_core.events import Event

__all__ = ["HandoffError", "LocalProtocolError", "RemoteProtocolError"]


class HandoffError(Exception):
    """Base class of every error this library raises on purpose."""

    def __init__(self, message: str, *, hint: Event | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class LocalProtocolError(HandoffError):
    """The caller's fault: an illegal event for the current state, or an invalid event."""


class RemoteProtocolError(HandoffError):
    """A peer's fault: a malformed payload or an event that breaks the peer's protocol."""
