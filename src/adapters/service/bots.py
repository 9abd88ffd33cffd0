"""A tiny rule bot for ``handoff serve`` / ``handoff chat`` without a platform (``type = "echo"``).

Greets on "hi"/"hello", escalates on the transfer phrase (to the configured targets), and echoes
everything else. Useful to try a backend from the terminal, and in tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.policy import normalize_utterance

__all__ = ["EchoBot"]


class EchoBot:
    def __init__(
        self,
        *,
        transfer_phrase: str = "transfer me",
        targets: tuple[ev.EscalationTarget, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transfer_phrase = normalize_utterance(transfer_phrase)
        self.targets = targets
        self.clock = clock

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        now = self.clock()
        said = normalize_utterance(message.text)
        if said == self.transfer_phrase:
            return [
                ev.BotReplied(at=now, text="Let me connect you to an agent."),
                ev.BotEscalated(at=now, targets=self.targets, message_id=message.message_id),
            ]
        if said in ("hi", "hello"):
            return [ev.BotReplied(at=now, text="Hello! I am the echo bot.")]
        return [ev.BotReplied(at=now, text=f"You said: {message.text}")]

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=self.clock(), text=f"{request.target_bot} here.")]

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        if report.outcome is fx.TransferOutcome.SUCCEEDED:
            return []
        return [ev.BotReplied(at=self.clock(), text="No agent could take the chat; I'm back.")]
