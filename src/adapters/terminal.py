"""Terminal helpers shared by ``handoff connect``, ``handoff demo`` and ``handoff chat``.

* :class:`TerminalChannel`: a :class:`~handoff_core.ports.UserChannel` printing one line per event
  with the conversation state (``connect`` and ``demo``)::

      queued          system │ You are number 2 in the queue.
      agent_connected    Ada │ Hello, how can I help you?

  With ``json=True`` every event is one JSON object per line (``state``, ``kind``, ``sender``,
  ``text``, ``agent``, ``queue_position``…), flushed as it happens, so the output works in a pipe.
* :class:`PlainChannel`: the short form of ``handoff chat`` (``bot: …``, ``Ada: …``,
  ``* system text``; or JSON lines with ``type``, ``sender``, ``text``, ``agent_name``…).
* :func:`stdin_lines`: lines typed on stdin, without blocking the event loop.
* :class:`NoBot`, :func:`chat_with_agent` and :func:`exit_status`: a terminal user talking straight
  to an agent backend (``handoff connect <backend>``), with the exit-status contract: 0 on a normal
  end, 1 with a one-line reason on stderr when the transfer fails or the session is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TextIO

import anyio
import anyio.to_thread

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.machine import State
from handoff_core.policy import Policy
from handoff_core.ports import AgentBackend
from handoff_core.runtime import MemoryStore, Runtime

__all__ = [
    "add_connect_options",
    "LineChannel",
    "NoBot",
    "PlainChannel",
    "TerminalChannel",
    "chat_with_agent",
    "exit_status",
    "key_values",
    "stdin_lines",
]

#: Called after every delivery with the conversation as it is after that step.
Observer = Callable[[Conversation, fx.DeliverToUser], None]

_STATE_WIDTH = 15
_WHO_WIDTH = 8


class LineChannel:
    """What every terminal channel shares: the port, a record of deliveries, observers, and one
    flushed line per event. Subclasses say how a delivery and a typing indicator look."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.observers: list[Observer] = []
        #: Every delivery, in order (for tests and scripts).
        self.deliveries: list[tuple[str, fx.DeliverToUser]] = []
        self._typing: dict[str, bool] = {}

    # -- the port ---------------------------------------------------------------------------------

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        self.deliveries.append((conversation.id, delivery))
        if delivery.sender is fx.Sender.AGENT:
            self._typing[conversation.id] = False  # a message ends the agent's typing
        self.show_delivery(conversation, delivery)
        for observer in list(self.observers):
            observer(conversation, delivery)

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        changed = self._typing.get(conversation.id, False) != indicator.typing
        self._typing[conversation.id] = indicator.typing
        self.show_typing(conversation, indicator, changed=changed)

    # -- formatting (subclasses) ------------------------------------------------------------------

    def show_delivery(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        raise NotImplementedError

    def show_typing(
        self, conversation: Conversation, indicator: fx.SetUserTyping, *, changed: bool
    ) -> None:
        raise NotImplementedError

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()  # one line per event, as it happens: the output works in a pipe


def _who(delivery: fx.DeliverToUser) -> str:
    return {
        fx.Sender.BOT: "bot",
        fx.Sender.SYSTEM: "system",
        fx.Sender.AGENT: delivery.agent_name or "agent",
    }[delivery.sender]


class TerminalChannel(LineChannel):
    """The transcript: one line per event with the conversation state (``connect``, ``demo``)."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        json: bool = False,
        user_label: str = "you",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(out)
        self.json = json
        self.user_label = user_label
        self.clock = clock

    def show_delivery(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        self._emit(
            conversation,
            kind="message",
            sender=delivery.sender.value,
            who=_who(delivery),
            text=delivery.text,
            extra={"message_key": delivery.message_key, "agent": delivery.agent_name},
        )

    def show_typing(
        self, conversation: Conversation, indicator: fx.SetUserTyping, *, changed: bool
    ) -> None:
        if not changed:
            return  # repeated indicator: nothing new to show
        who = indicator.agent_name or conversation.agent_name or "agent"
        if self.json:
            self._emit(
                conversation,
                kind="typing",
                sender="agent",
                who=who,
                text="",
                extra={"typing": indicator.typing, "agent": who},
            )
        elif indicator.typing:
            self._emit(
                conversation,
                kind="typing",
                sender="agent",
                who=who,
                text=f"({who} is typing…)",
                extra={},
            )

    # -- lines that are not deliveries -----------------------------------------------------------

    def user(self, conversation: Conversation | None, text: str, *, state: str = "bot") -> None:
        """Echo what the user said (scripts and demos; a terminal user sees their own typing)."""
        self._write_line(
            conversation.id if conversation else None,
            conversation.state.value if conversation else state,
            kind="user",
            sender="user",
            who=self.user_label,
            text=text,
            extra={},
        )

    def info(
        self, conversation: Conversation | None, text: str, *, state: str = "bot", **extra: Any
    ) -> None:
        """Something the user is not shown but a reader should know (what a bot platform was
        told, what a target bot received), with the conversation state; JSON ``kind: "info"``."""
        self._write_line(
            conversation.id if conversation else None,
            conversation.state.value if conversation else state,
            kind="info",
            sender="info",
            who="info",
            text=text,
            extra=extra,
        )

    def note(self, text: str) -> None:
        """A narration line outside any conversation (demo headings)."""
        if self.json:
            self._print(
                json.dumps({"kind": "note", "text": text, "at": self.clock()}, ensure_ascii=False)
            )
        else:
            self._print(text)

    # -- formatting -------------------------------------------------------------------------------

    def _emit(
        self,
        conversation: Conversation,
        *,
        kind: str,
        sender: str,
        who: str,
        text: str,
        extra: dict[str, Any],
    ) -> None:
        extra = {
            **extra,
            "queue_position": conversation.queue_position,
            "estimated_wait": conversation.estimated_wait,
        }
        self._write_line(
            conversation.id,
            conversation.state.value,
            kind=kind,
            sender=sender,
            who=who,
            text=text,
            extra=extra,
        )

    def _write_line(
        self,
        conversation_id: str | None,
        state: str,
        *,
        kind: str,
        sender: str,
        who: str,
        text: str,
        extra: dict[str, Any],
    ) -> None:
        if self.json:
            record = {
                "conversation": conversation_id,
                "state": state,
                "kind": kind,
                "sender": sender,
                "text": text,
                **{k: v for k, v in extra.items() if v is not None},
                "at": self.clock(),
            }
            self._print(json.dumps(record, ensure_ascii=False, default=str))
            return
        lines = text.splitlines() or [""]
        prefix = f"{state:<{_STATE_WIDTH}} {who[:_WHO_WIDTH]:>{_WHO_WIDTH}} │ "
        self._print(prefix + lines[0])
        for line in lines[1:]:  # continuation lines stay under the text column
            self._print(" " * (len(prefix) - 2) + "│ " + line)


class PlainChannel(LineChannel):
    """``handoff chat``'s short form: ``bot: …``, ``Ada: …``, ``* system text``, ``(… is
    typing…)``; with ``json=True``, ``{"type": "message"|"typing", …}`` per delivery/indicator
    (every indicator is printed, repeated ones too)."""

    def __init__(self, out: TextIO | None = None, *, json: bool = False) -> None:
        super().__init__(out)
        self.json = json

    def show_delivery(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if self.json:
            record = {
                "type": "message",
                "sender": delivery.sender.value,
                "text": delivery.text,
                "agent_name": delivery.agent_name,
                "message_key": delivery.message_key,
                "state": conversation.state.value,
            }
            self._print(json.dumps(record, ensure_ascii=False))
        elif delivery.sender is fx.Sender.SYSTEM:
            self._print(f"* {delivery.text}")
        else:
            self._print(f"{_who(delivery)}: {delivery.text}")

    def show_typing(
        self, conversation: Conversation, indicator: fx.SetUserTyping, *, changed: bool
    ) -> None:
        if self.json:
            record = {
                "type": "typing",
                "typing": indicator.typing,
                "agent_name": indicator.agent_name,
            }
            self._print(json.dumps(record))
        elif indicator.typing:
            self._print(f"  ({indicator.agent_name or 'the agent'} is typing…)")


# -- stdin ----------------------------------------------------------------------------------------


async def stdin_lines() -> AsyncGenerator[str, None]:
    """Lines from stdin (without their line ending) without blocking the event loop: a pipe, a
    terminal or a regular file. Ends at EOF; a last line without a newline is yielded too."""
    fd = sys.stdin.fileno()
    buffer = b""
    while True:
        try:
            await anyio.wait_readable(fd)
            chunk = os.read(fd, 65536)
        except (OSError, ValueError, NotImplementedError):
            # A regular file can't be watched: read it in a worker thread instead.
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            yield line.rstrip("\r\n")
            continue
        if not chunk:
            if buffer:
                yield buffer.decode(errors="replace")
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace").rstrip("\r")


def add_connect_options(parser: argparse.ArgumentParser) -> None:
    """The options every ``handoff connect <backend>`` shares (the output contract)."""
    parser.add_argument("--lang", default="en", help="language of the conversation")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--queue-timeout",
        type=float,
        default=600.0,
        help="give up waiting for an agent after this many seconds",
    )


# -- a terminal user and an agent, no bot ---------------------------------------------------------


class NoBot:
    """A :class:`~handoff_core.ports.BotPlatform` for talking to an agent only: there is no bot,
    just the transfer outcome it is told (``outcome``)."""

    def __init__(self) -> None:
        self.outcome: fx.ReportTransferOutcome | None = None

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        return []

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return []

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        self.outcome = report
        return []


def exit_status(
    conversation: Conversation | None,
    outcome: fx.ReportTransferOutcome | None,
    *,
    command: str = "handoff connect",
) -> int:
    """0 for a chat that ended normally; else 1, with a one-line reason on stderr (the
    conversation vanished, the transfer failed, the agent session was lost)."""
    if conversation is None:
        print(f"{command}: the conversation vanished", file=sys.stderr)
        return 1
    if conversation.state is State.TRANSFER_FAILED:
        reason = outcome.description if outcome is not None else "the transfer failed"
        print(f"{command}: transfer failed: {reason}", file=sys.stderr)
        return 1
    cause = conversation.audit[-1].cause if conversation.audit else ""
    if cause.startswith("session lost"):
        print(f"{command}: {cause}", file=sys.stderr)
        return 1
    return 0


async def chat_with_agent(
    backend: AgentBackend,
    channel: TerminalChannel,
    lines: AsyncIterator[str],
    *,
    language: str = "en",
    user_name: str | None = None,
    prechat: Mapping[str, ev.Scalar] | None = None,
    queue_timeout: float = 600.0,
    conversation_id: str = "terminal",
) -> int:
    """Escalate at once, relay ``lines`` to the agent, stop when the agent session is over.

    The end of ``lines`` ends the chat cleanly, as the end keyword would. In JSON mode the user's
    lines are echoed too, so a pipe reading the output sees both sides. Returns
    :func:`exit_status`.
    """
    details = dict(prechat or {})
    bot = NoBot()
    policy = Policy(queue_timeout=queue_timeout)
    cid = conversation_id
    finished = anyio.Event()

    def watch(conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        if conversation.agent_session is None:  # the agent session is over, one way or another
            finished.set()

    channel.observers.append(watch)
    runtime = Runtime(bot=bot, agents=backend, channel=channel, store=MemoryStore(), policy=policy)
    async with runtime.running():
        await runtime.start(cid, language=language, user_name=user_name, prechat=details)
        await runtime.feed(
            cid,
            ev.BotEscalated(
                at=time.time(), reason=ev.EscalationReason.USER_REQUEST, prechat=details
            ),
        )
        async with anyio.create_task_group() as task_group:

            async def read_user() -> None:
                async for line in lines:
                    if line.strip():
                        if channel.json:
                            channel.user(await runtime.get(cid), line)
                        await runtime.user_said(cid, line)
                await runtime.user_said(cid, policy.end_keyword)

            task_group.start_soon(read_user)
            await finished.wait()
            task_group.cancel_scope.cancel()
        conversation = await runtime.get(cid)
    return exit_status(conversation, bot.outcome)


def key_values(
    pairs: Sequence[str], *, option: str, command: str = "handoff connect"
) -> dict[str, str]:
    """``["KEY=VALUE", …]`` from a repeatable command-line option → a dict; exits naming the
    option on a malformed pair."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"{command}: {option} expects KEY=VALUE, got {pair!r}")
        values[key.strip()] = value
    return values
