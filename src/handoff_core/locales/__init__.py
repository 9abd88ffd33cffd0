"""Default system-message texts, one module per language, all written for this project.

Language codes are lowercase with an underscore (``zh_cn``);
:func:`handoff_core.messages.resolve_language` maps ``zh-CN``, ``pt_BR``, ``en-US``… onto them.
"""

from handoff_core.locales import (
    ar,
    ca,
    de,
    en,
    es,
    fr,
    it,
    ja,
    ko,
    nl,
    pl,
    pt,
    tr,
    zh_cn,
    zh_tw,
)

#: language code → message key → text
CATALOG: dict[str, dict[str, str]] = {
    module.__name__.rsplit(".", 1)[1]: module.MESSAGES
    for module in (en, ko, es, fr, de, ja, pl, ar, tr, it, pt, zh_cn, zh_tw, ca, nl)
}

__all__ = ["CATALOG"]
