"""Ports: the shapes adapters implement (``typing.Protocol``, so no inheritance is needed).

Every port method receives the conversation record as it is stored (a frozen snapshot) and the
effect to perform. Adapters keep no conversation state of their own that a restart would lose:
what they need to resume (session keys, acks, event ids, callback URLs) travels as a *cursor* in
the events they produce and comes back to them in ``conversation.agent_cursor`` /
``conversation.bot_cursor``. A small in-process cache of live connections is fine; it must be
rebuildable from the cursor.

Errors: a port method that raises is turned into an event by the runtime (a transfer rejection, a
lost session, a bot failure), never a crash. Raise :class:`~handoff_core.errors.RemoteProtocolError`
for a peer that broke its protocol; anything else is treated as an IO failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from handoff_core import effects as fx
from handoff_core import events as ev

if TYPE_CHECKING:
    from handoff_core.conversation import Conversation

__all__ = ["AgentBackend", "BotPlatform", "SessionStore", "StaleConversation", "UserChannel"]


@runtime_checkable
class AgentBackend(Protocol):
    """A contact-center system where human agents pick up conversations (Live Agent, MIAW…)."""

    #: A short, stable name (stored with the conversation to route later effects back here).
    name: str

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        """Is any agent available for these targets right now?"""

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        """Request an agent; return the cursor from which :meth:`events` can follow the session.

        Must not wait for an agent: acceptance, queue updates and the join arrive as events.
        """

    def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        """Follow one session from ``cursor``: yield its events in order, each carrying the cursor
        after it, until the session ends (then return). Resumable: a fresh adapter instance in
        another process given the stored cursor continues without loss or repetition that the
        core cannot de-duplicate (``peer_id``)."""

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        """Deliver a user message to the agent (in order; a retried ordinal must not duplicate)."""

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None: ...

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        """End the session (idempotent; with ``peer_closed`` only release local resources)."""


@runtime_checkable
class BotPlatform(Protocol):
    """The bot: Einstein Bots, Kore.ai, your own.

    Request/response bots return their answers as events (they are fed back into the core in
    order); webhook bots return nothing here and call ``Runtime.feed`` when they answer.
    """

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]: ...

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        """Bot-to-bot transfer: start a session on ``request.target_bot`` with the variables."""

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        """Tell the bot how its escalation ended (Einstein: ``TransferSucceeded``/``Failed``)."""


@runtime_checkable
class UserChannel(Protocol):
    """Where the user reads: a web chat, Kore's ``sendUserMessage``, a terminal."""

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None: ...

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None: ...


@runtime_checkable
class SessionStore(Protocol):
    """Where conversations live between steps.

    ``save`` is atomic and conditional: it succeeds only if the stored record's ``step`` is
    ``expected_step`` (``None``: the conversation must not exist yet), so two processes can never
    both apply a step. It raises :class:`StaleConversation` otherwise.
    """

    async def load(self, conversation_id: str) -> Conversation | None: ...

    async def save(self, conversation: Conversation, *, expected_step: int | None) -> None: ...

    async def mark_done(self, conversation_id: str, effect_keys: Sequence[str]) -> None:
        """Remove these effects from the stored outbox (they have been performed)."""

    async def claim(
        self, conversation_id: str, *, step: int, owner: str, until: float, now: float
    ) -> Conversation | None:
        """Atomically take over the outbox of step ``step`` for ``owner`` until ``until``.

        Succeeds only if the stored record is still at ``step``, still has an outbox, and its
        lease is free, expired (``lease_until <= now``) or already ``owner``'s; returns the record
        as claimed (``lease_owner``/``lease_until`` set), else ``None``. Two runtimes that find
        the same dead runtime's step can thus never both perform it.
        """

    def active(self) -> AsyncIterator[Conversation]:
        """Conversations with work to resume: an outbox, an agent session, or timers."""


class StaleConversation(Exception):
    """``SessionStore.save`` lost a race: the stored conversation moved on."""
