"""A terminal user channel: what the user reads, one line per event, with the conversation state.

Shared by ``handoff connect``, ``handoff demo`` and ``handoff chat``. Human lines look like::

    queued          system │ You are number 2 in the queue.
    agent_connected    Ada │ Hello, how can I help you?

With ``json=True`` every event is one JSON object per line (``state``, ``kind``, ``sender``,
``text``, ``agent``, ``queue_position``…), flushed as it happens, so the output works in a pipe.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from handoff_core import effects as fx
from handoff_core.conversation import Conversation

__all__ = ["TerminalChannel"]

#: Called after every delivery with the conversation as it is after that step.
Observer = Callable[[Conversation, fx.DeliverToUser], None]

_STATE_WIDTH = 15
_WHO_WIDTH = 8


class TerminalChannel:
    """A :class:`~handoff_core.ports.UserChannel` that writes lines to ``out``."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        json: bool = False,
        user_label: str = "you",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.out = out if out is not None else sys.stdout
        self.json = json
        self.user_label = user_label
        self.clock = clock
        self.observers: list[Observer] = []
        #: Every delivery, in order (for tests and scripts).
        self.deliveries: list[tuple[str, fx.DeliverToUser]] = []
        self._typing: dict[str, bool] = {}

    # -- the port ---------------------------------------------------------------------------------

    async def deliver(self, conversation: Conversation, delivery: fx.DeliverToUser) -> None:
        self.deliveries.append((conversation.id, delivery))
        if delivery.sender is fx.Sender.AGENT:
            self._typing[conversation.id] = False  # a message ends the agent's typing
        who = {
            fx.Sender.BOT: "bot",
            fx.Sender.SYSTEM: "system",
            fx.Sender.AGENT: delivery.agent_name or "agent",
        }[delivery.sender]
        self._emit(
            conversation,
            kind="message",
            sender=delivery.sender.value,
            who=who,
            text=delivery.text,
            extra={"message_key": delivery.message_key, "agent": delivery.agent_name},
        )
        for observer in list(self.observers):
            observer(conversation, delivery)

    async def typing(self, conversation: Conversation, indicator: fx.SetUserTyping) -> None:
        if self._typing.get(conversation.id, False) == indicator.typing:
            return  # repeated indicator: nothing new to show
        self._typing[conversation.id] = indicator.typing
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
            self._print(json.dumps(record, ensure_ascii=False))
            return
        lines = text.splitlines() or [""]
        prefix = f"{state:<{_STATE_WIDTH}} {who[:_WHO_WIDTH]:>{_WHO_WIDTH}} │ "
        self._print(prefix + lines[0])
        for line in lines[1:]:  # continuation lines stay under the text column
            self._print(" " * (len(prefix) - 2) + "│ " + line)

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()  # one line per event, as it happens: the output works in a pipe
