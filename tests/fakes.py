"""In-memory fake ports for runtime tests: rule bot, scripted agent backend, recording channel."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation


class RecordingChannel:
    def __init__(self) -> None:
        self.deliveries: list[tuple[str, fx.DeliverToUser]] = []
        self.typing_shown: list[tuple[str, bool]] = []
        self.fail_next = 0
        self._changed = anyio.Event()

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("channel down")
        self.deliveries.append((conversation.id, delivery))
        self._changed.set()
        self._changed = anyio.Event()

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        self.typing_shown.append((conversation.id, indicator.typing))

    def texts(self, conversation_id: str) -> list[str]:
        return [d.text for cid, d in self.deliveries if cid == conversation_id]

    def keys(self, conversation_id: str) -> list[str | None]:
        return [d.message_key for cid, d in self.deliveries if cid == conversation_id]

    async def wait_for(self, conversation_id: str, predicate: Any, limit: float = 5) -> None:
        with anyio.fail_after(limit):
            while not predicate(self.texts(conversation_id), self.keys(conversation_id)):
                await self._changed.wait()


class RuleBot:
    """Echoes; says 'I can't help' to 'refund' (not understood); escalates on 'escalate me'."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []
        self.reports: list[tuple[str, fx.TransferOutcome]] = []
        self.sessions: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = False

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        if self.fail:
            raise ConnectionError("bot down")
        self.received.append((conversation.id, message.text))
        now = time.time()
        if message.text == "escalate me":
            return [
                ev.BotReplied(at=now, text="Let me find someone for you."),
                ev.BotEscalated(
                    at=now,
                    reason=ev.EscalationReason.BOT_DECISION,
                    targets=(ev.EscalationTarget(kind="queue", value="support"),),
                    variables={"order": "A-1"},
                    message_id="esc-1",
                ),
            ]
        if message.text == "refund":
            return [ev.BotReplied(at=now, text="Sorry, I didn't get that.", not_understood=True)]
        return [ev.BotReplied(at=now, text=f"bot: {message.text}")]

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        self.sessions.append((conversation.id, request.target_bot, dict(request.variables)))
        return [ev.BotReplied(at=time.time(), text=f"{request.target_bot} here")]

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        self.reports.append((conversation.id, report.outcome))
        if report.outcome is fx.TransferOutcome.SUCCEEDED:
            return []
        return [ev.BotReplied(at=time.time(), text="The transfer failed; I'm back.")]


class ScriptedAgents:
    """An in-memory agent backend. Tests push agent events with :meth:`push`.

    Sessions are streams of events; ``open`` queues an ``AgentAccepted`` at position 1, and when
    ``auto_join`` is set an ``AgentJoined`` follows.
    """

    name = "scripted"

    def __init__(
        self,
        *,
        auto_join: str | None = "Ada",
        available: bool = True,
        reject: ev.RejectReason | None = None,
    ) -> None:
        self.auto_join = auto_join
        self.available = available
        self.reject = reject
        self.fail_open = False
        self.fail_send = False
        self.sent: list[tuple[str, str]] = []
        self.typing_seen: list[tuple[str, bool]] = []
        self.closed: list[tuple[str, fx.CloseReason]] = []
        self.closed_with: list[ev.Cursor | None] = []
        self.opened: list[fx.OpenAgentSession] = []
        self._streams: dict[
            str,
            tuple[MemoryObjectSendStream[ev.AgentEvent], MemoryObjectReceiveStream[ev.AgentEvent]],
        ] = {}
        self._counter = 0

    def _stream(
        self, session: str
    ) -> tuple[MemoryObjectSendStream[ev.AgentEvent], MemoryObjectReceiveStream[ev.AgentEvent]]:
        if session not in self._streams:
            self._streams[session] = anyio.create_memory_object_stream[ev.AgentEvent](100)
        return self._streams[session]

    def push(self, session: str, kind: type[ev.AgentEvent], **fields: Any) -> None:
        self._counter += 1
        fields.setdefault("peer_id", str(self._counter))
        fields.setdefault("cursor", {"n": self._counter})
        self._stream(session)[0].send_nowait(kind(at=time.time(), session=session, **fields))

    async def check_availability(
        self, conversation: Conversation, request: fx.CheckAgentAvailability
    ) -> bool:
        return self.available

    async def open(self, conversation: Conversation, request: fx.OpenAgentSession) -> ev.Cursor:
        if self.fail_open:
            raise ConnectionError("backend down")
        self.opened.append(request)
        if self.reject is not None:
            self.push(request.session, ev.TransferRejected, reason=self.reject)
        else:
            self.push(request.session, ev.AgentAccepted, queue_position=1)
            if self.auto_join:
                self.push(request.session, ev.AgentJoined, agent_name=self.auto_join)
        return {"n": 0}

    async def events(
        self, conversation: Conversation, session: str, cursor: ev.Cursor
    ) -> AsyncIterator[ev.AgentEvent]:
        # Like a server-side session, the stream outlives one reader: a resumed runtime reads on.
        receive = self._stream(session)[1]
        async for event in receive:
            yield event
            if isinstance(event, ev.AgentEnded | ev.TransferRejected):
                return

    async def send(self, conversation: Conversation, message: fx.ForwardToAgent) -> None:
        if self.fail_send:
            raise ConnectionError("send failed")
        self.sent.append((message.session, message.text))

    async def typing(self, conversation: Conversation, request: fx.SetAgentTyping) -> None:
        self.typing_seen.append((request.session, request.typing))

    async def close(self, conversation: Conversation, request: fx.CloseAgentSession) -> None:
        self.closed.append((request.session, request.reason))
        self.closed_with.append(conversation.agent_cursor)
        send, receive = self._stream(request.session)
        send.close()
        receive.close()

    def close_all(self) -> None:
        for send, receive in self._streams.values():
            send.close()
            receive.close()
