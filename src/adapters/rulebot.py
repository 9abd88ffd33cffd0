"""A small built-in rule bot (a :class:`~handoff_core.ports.BotPlatform`) for the demo and tests.

It greets, answers a few FAQs, marks anything else not-understood (the core escalates after
several in a row), and asks for a human on a complaint. "agent" and the policy's other phrases
never reach it: the core recognises them and escalates by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import attrs

from handoff_core import effects as fx
from handoff_core import events as ev
from handoff_core.conversation import Conversation
from handoff_core.policy import normalize_utterance

__all__ = ["FAQ", "RuleBot"]


@attrs.frozen(kw_only=True)
class FAQ:
    """An answer given when any of ``keywords`` appears (as a whole word) in the message."""

    keywords: tuple[str, ...]
    answer: str


DEFAULT_FAQS: tuple[FAQ, ...] = (
    FAQ(
        keywords=("hi", "hello", "hey"),
        answer="Hello! I can tell you about opening hours, shipping and returns. "
        'Type "agent" to talk to a person.',
    ),
    FAQ(
        keywords=("hours", "open", "opening"), answer="We are open Monday to Friday, 9:00 to 17:00."
    ),
    FAQ(
        keywords=("shipping", "ship", "delivery", "deliver"),
        answer="Orders ship within 2 working days; delivery takes 1 to 3 more.",
    ),
    FAQ(
        keywords=("return", "returns", "refund"),
        answer="You can return any item within 30 days for a full refund.",
    ),
    FAQ(keywords=("thanks", "thank", "bye", "goodbye"), answer="You're welcome. Have a nice day!"),
)


class RuleBot:
    """Keyword rules in, answers out. Deterministic and instant."""

    def __init__(
        self,
        faqs: Sequence[FAQ] = DEFAULT_FAQS,
        *,
        escalate_on: Sequence[str] = ("complaint", "complain"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faqs = tuple(faqs)
        self.escalate_on = tuple(normalize_utterance(word) for word in escalate_on)
        self.clock = clock
        #: Transfer outcomes the core reported, by conversation id (for scripts and tests).
        self.reports: list[tuple[str, fx.ReportTransferOutcome]] = []

    async def send(
        self, conversation: Conversation, message: fx.ForwardToBot
    ) -> Sequence[ev.BotEvent]:
        words = set(normalize_utterance(message.text).split())
        now = self.clock()
        if words & set(self.escalate_on):
            return [
                ev.BotReplied(at=now, text="I'm sorry to hear that. Let me find a person for you."),
                ev.BotEscalated(at=now, reason=ev.EscalationReason.BOT_DECISION),
            ]
        for faq in self.faqs:
            if words & set(faq.keywords):
                return [ev.BotReplied(at=now, text=faq.answer)]
        return [
            ev.BotReplied(
                at=now,
                text="Sorry, I did not understand. Ask about hours, shipping or returns, "
                'or type "agent".',
                not_understood=True,
            )
        ]

    async def start_session(
        self, conversation: Conversation, request: fx.StartBotSession
    ) -> Sequence[ev.BotEvent]:
        return [ev.BotReplied(at=self.clock(), text=f"Hi, this is {request.target_bot}.")]

    async def report_transfer(
        self, conversation: Conversation, report: fx.ReportTransferOutcome
    ) -> Sequence[ev.BotEvent]:
        self.reports.append((conversation.id, report))
        if report.outcome is fx.TransferOutcome.SUCCEEDED:
            return []
        return [
            ev.BotReplied(
                at=self.clock(),
                text="I could not reach a person just now, but I am still here. "
                "Ask me about hours, shipping or returns.",
            )
        ]
