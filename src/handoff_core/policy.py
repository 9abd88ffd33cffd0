"""Policy: the deployment's choices that shape every conversation (shared, immutable)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import attrs

from handoff_core.errors import LocalProtocolError
from handoff_core.messages import MessageCatalog

__all__ = ["DEFAULT_ESCALATION_PHRASES", "Policy", "normalize_utterance"]

DEFAULT_ESCALATION_PHRASES: tuple[str, ...] = (
    "agent",
    "human",
    "live agent",
    "talk to a human",
    "talk to an agent",
    "speak to a human",
    "speak to an agent",
    "chat with associate",
    "representative",
)

_PUNCTUATION = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACES = re.compile(r"\s+", re.UNICODE)


def normalize_utterance(text: str) -> str:
    """Case-fold, drop punctuation and collapse spaces, so "Agent!" matches "agent"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


def _positive_int(instance: Policy, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LocalProtocolError(
            f"Policy.{attribute.name}: expected an int ≥ 1 or None, got {value!r}"
        )


def _seconds(instance: Policy, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise LocalProtocolError(
            f"Policy.{attribute.name}: expected positive seconds or None, got {value!r}"
        )


def _match_mode(instance: Policy, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("exact", "contains"):
        raise LocalProtocolError(
            f"Policy.phrase_match: expected 'exact' or 'contains', got {value!r}"
        )


def _phrases(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | frozenset | set):
        raise LocalProtocolError(
            f"Policy.escalation_phrases: expected a list of phrases, got {value!r}"
        )
    phrases = []
    for item in value:
        if not isinstance(item, str) or not normalize_utterance(item):
            raise LocalProtocolError(
                f"Policy.escalation_phrases: expected non-empty strings, got {item!r}"
            )
        phrases.append(normalize_utterance(item))
    return tuple(phrases)


def _keyword(value: object) -> str:
    if not isinstance(value, str) or not normalize_utterance(value):
        raise LocalProtocolError(f"Policy.end_keyword: expected a non-empty string, got {value!r}")
    return value.strip()


def _catalog(value: object) -> MessageCatalog:
    if isinstance(value, MessageCatalog):
        return value
    if value is None:
        return MessageCatalog()
    if isinstance(value, Mapping):
        return MessageCatalog(value)
    raise LocalProtocolError(
        f"Policy.messages: expected a MessageCatalog or a mapping language → key → text, "
        f"got {type(value).__name__}"
    )


@attrs.frozen(kw_only=True)
class Policy:
    """How conversations behave. One per deployment, shared by all conversations.

    * ``escalation_phrases``: user utterances that ask for a human. Matched after
      :func:`normalize_utterance`; with ``phrase_match="exact"`` (default) the whole message must be
      a phrase, with ``"contains"`` the phrase may appear inside it as whole words.
    * ``end_keyword``: what the user types to end the agent chat (announced at handoff).
    * ``max_bot_errors`` / ``max_not_understood``: escalate after this many consecutive bot failures
      or fallback answers; ``None`` disables the trigger.
    * ``check_availability``: ask the backend before opening an agent session.
    * ``queue_timeout``: give up waiting for an agent after this many seconds.
    * ``idle_timeout``: end an agent chat after this long with no message from either side.
    * ``transcript_limit`` / ``audit_limit``: how many recent entries a conversation keeps.
    """

    escalation_phrases: tuple[str, ...] = attrs.field(
        default=DEFAULT_ESCALATION_PHRASES, converter=_phrases
    )
    phrase_match: str = attrs.field(default="exact", validator=_match_mode)
    end_keyword: str = attrs.field(default="endagentchat", converter=_keyword)
    max_bot_errors: int | None = attrs.field(default=3, validator=_positive_int)
    max_not_understood: int | None = attrs.field(default=3, validator=_positive_int)
    check_availability: bool = False
    queue_timeout: float | None = attrs.field(default=300.0, validator=_seconds)
    idle_timeout: float | None = attrs.field(default=None, validator=_seconds)
    transcript_limit: int = attrs.field(default=20, validator=_positive_int)
    audit_limit: int = attrs.field(default=100, validator=_positive_int)
    #: How many recent peer event ids a conversation remembers to drop duplicates.
    dedup_window: int = attrs.field(default=64, validator=_positive_int)
    messages: MessageCatalog = attrs.field(factory=MessageCatalog, converter=_catalog)

    def asks_for_agent(self, text: str) -> bool:
        said = normalize_utterance(text)
        if not said:
            return False
        if self.phrase_match == "exact":
            return said in self.escalation_phrases
        padded = f" {said} "
        return any(f" {phrase} " in padded for phrase in self.escalation_phrases)

    def is_end_keyword(self, text: str, keyword: str | None = None) -> bool:
        return normalize_utterance(text) == normalize_utterance(keyword or self.end_keyword)
