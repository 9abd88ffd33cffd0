"""Every translated catalog must mirror the English reference key by key."""

import string

import pytest

from handoff_core.locales import CATALOG

ENGLISH = CATALOG["en"]
TRANSLATIONS = sorted(code for code in CATALOG if code != "en")

#: (language, key) pairs whose text may legitimately equal English; there should be none.
ALLOWED_IDENTICAL: frozenset[tuple[str, str]] = frozenset()


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_all_languages_present() -> None:
    assert len(TRANSLATIONS) == 14


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_same_keys_as_english(code: str) -> None:
    assert list(CATALOG[code]) == list(ENGLISH)


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_same_placeholders_as_english(code: str) -> None:
    for key, english in ENGLISH.items():
        text = CATALOG[code][key]
        assert placeholders(text) == placeholders(english), key
        for name in placeholders(english):
            assert text.count("{" + name + "}") == 1, (key, name)


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_texts_are_translated(code: str) -> None:
    for key, english in ENGLISH.items():
        text = CATALOG[code][key]
        assert text.strip(), key
        if len(english.split()) > 3 and (code, key) not in ALLOWED_IDENTICAL:
            assert text != english, f"{code}.{key} is still English"
