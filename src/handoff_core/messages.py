"""System messages: keys, default texts in 15 languages, per-language overrides.

A :class:`MessageCatalog` renders a key with parameters in a language. Users override any key per
language (``{"fr": {"agentJoinedMessage": "…"}}``) or for every language (``"*"``). An override
that uses a placeholder the key does not provide is rejected when the catalog is built, not when
the message is first needed in production.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from handoff_core.errors import LocalProtocolError
from handoff_core.locales import CATALOG

__all__ = ["DEFAULT_LANGUAGE", "MESSAGE_KEYS", "MessageCatalog", "resolve_language"]

DEFAULT_LANGUAGE = "en"

#: Every key a system message can have, and the parameters each one receives.
MESSAGE_KEYS: dict[str, frozenset[str]] = {
    key: frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)
    for key, text in CATALOG[DEFAULT_LANGUAGE].items()
}

#: Wildcard language for overrides that apply to every language.
ANY_LANGUAGE = "*"


def resolve_language(language: str | None, available: Mapping[str, object] = CATALOG) -> str:
    """Map a language tag onto a catalog code: ``zh-TW`` → ``zh_tw``, ``pt-BR`` → ``pt``,
    ``en-US`` → ``en``; unknown → ``en``."""
    if not language:
        return DEFAULT_LANGUAGE
    code = language.strip().replace("-", "_").lower()
    if code in available:
        return code
    if code in ("zh_hant", "zh_hk", "zh_mo"):
        return "zh_tw"
    if code in ("zh", "zh_hans", "zh_sg"):
        return "zh_cn"
    base = code.split("_", 1)[0]
    if base in available:
        return base
    return DEFAULT_LANGUAGE


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:  # unbalanced braces
        raise LocalProtocolError(f"malformed message template {text!r}: {exc}") from None


class MessageCatalog:
    """Renders system messages. Immutable once built; share one per deployment."""

    __slots__ = ("_texts",)

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        texts: dict[str, dict[str, str]] = {lang: dict(m) for lang, m in CATALOG.items()}
        for language, messages in (overrides or {}).items():
            for key, text in messages.items():
                where = f"messages[{language!r}][{key!r}]"
                if key not in MESSAGE_KEYS:
                    raise LocalProtocolError(
                        f"{where}: unknown message key; expected one of {sorted(MESSAGE_KEYS)}"
                    )
                if not isinstance(text, str):
                    raise LocalProtocolError(f"{where}: expected str, got {type(text).__name__}")
                unknown = _placeholders(text) - MESSAGE_KEYS[key]
                if unknown:
                    raise LocalProtocolError(
                        f"{where}: unknown placeholder(s) {sorted(unknown)}; this message "
                        f"provides {sorted(MESSAGE_KEYS[key]) or 'none'}"
                    )
                targets = list(texts) if language == ANY_LANGUAGE else [language]
                for target in targets:
                    code = target.replace("-", "_").lower()
                    texts.setdefault(code, {})[key] = text
        self._texts = texts

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self._texts)

    def render(self, key: str, language: str, params: Mapping[str, str] | None = None) -> str:
        if key not in MESSAGE_KEYS:
            raise LocalProtocolError(f"unknown system message key {key!r}")
        code = resolve_language(language, self._texts)
        template = self._texts[code].get(key) or self._texts[DEFAULT_LANGUAGE][key]
        return template.format_map(dict(params or {}))
