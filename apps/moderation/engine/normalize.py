"""Format passes for a username, and the skeleton that makes look-alike names collide."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from apps.moderation.engine.confusables import confusable_table
from apps.moderation.engine.types import Decision, Rules

# NFKC can expand a string, and on long input it was a denial of service (Django CVE-2023-46695):
# refuse anything this many times the maximum before normalising.
RAW_LENGTH_FACTOR = 4
SEPARATORS = frozenset("_-.")
MAX_MARKS_IN_A_ROW = 3  # enough for Devanagari or Vietnamese, not for "zalgo" stacks

DEFAULT_RULES = Rules()

_ASCII_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_ASCII_DIGITS = frozenset("0123456789")
_DOUBLED_SEPARATOR = re.compile(r"[_.-]{2}")

# Characters that render as nothing (or reorder the text) but are not format/control characters.
_INVISIBLE = frozenset(
    [
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),  # Mongolian free variation selectors
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),
    ]
)
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zl", "Zp"})  # Cf: zero-width, bidi, soft hyphen, BOM

# Unicode TR39 "highly restrictive": one script, or one of these combinations.
_SCRIPT_COMBINATIONS = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Character names start with their script ("CYRILLIC SMALL LETTER A") except these.
_SCRIPT_ALIASES = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA"}
_NO_SCRIPT = frozenset({"MODIFIER", ""})  # modifier letters (U+02BC, U+02C8) pass for punctuation

REASONS = {
    "empty": "Enter a name.",
    "invisible_characters": "This name contains invisible or text-direction characters.",
    "invalid_characters": "Names can only use letters, digits and the characters _ - .",
    "no_letter": "Names must contain at least one letter.",
    "edge_separator": "Names must start and end with a letter or a digit.",
    "mixed_scripts": "This name mixes letters from different alphabets (for example Latin and Cyrillic).",
    "doubled_separator": "Names can't have two of _ - . in a row.",
    "too_many_special_characters": "This name has too many of the characters _ - .",
}


def _reject(code: str, reason: str, display_name: str | None = None) -> Decision:
    return Decision(ok=False, code=code, reason=reason, display_name=display_name)


@lru_cache(maxsize=8192)
def letter_script(ch: str) -> str | None:
    """The script of a letter, from its Unicode name; None for letters that belong to no script."""
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    script = _SCRIPT_ALIASES.get(first, first)
    return None if script in _NO_SCRIPT else script


def _is_invisible(ch: str) -> bool:
    return ord(ch) in _INVISIBLE or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def _character_problem(name: str) -> tuple[str, set[str]]:
    """("", scripts of the letters) if every character is allowed, else ("invalid_characters", …)."""
    scripts: set[str] = set()
    marks = -1  # -1: not after a letter, so a mark here is not allowed
    for ch in name:
        category = unicodedata.category(ch)
        if category[0] == "L":
            script = letter_script(ch)
            if script is None:
                return "invalid_characters", scripts
            scripts.add(script)
            marks = 0
        elif category[0] == "M":
            if marks < 0 or marks >= MAX_MARKS_IN_A_ROW:
                return "invalid_characters", scripts
            marks += 1
        elif ch in _ASCII_DIGITS or ch in SEPARATORS:
            marks = -1
        else:
            return "invalid_characters", scripts
    return "", scripts


def _characters_and_scripts(name: str) -> tuple[str, str] | None:
    """(code, reason) for the first character-level problem, or None."""
    if name.isascii():
        if any(ch < " " or ch == "\x7f" for ch in name):
            return "invisible_characters", REASONS["invisible_characters"]
        if not _ASCII_NAME.fullmatch(name):
            return "invalid_characters", REASONS["invalid_characters"]
        scripts = {"LATIN"} if any(ch.isalpha() for ch in name) else set()
    else:
        if any(_is_invisible(ch) for ch in name):
            return "invisible_characters", REASONS["invisible_characters"]
        problem, scripts = _character_problem(name)
        if problem:
            return problem, REASONS[problem]
    if not scripts:
        return "invalid_characters", REASONS["no_letter"]
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_COMBINATIONS):
        return "mixed_scripts", REASONS["mixed_scripts"]
    return None


def _too_long(rules: Rules) -> str:
    return f"Names can be at most {rules.max_length} characters long."


def _separators_and_length(name: str, rules: Rules) -> tuple[str, str] | None:
    if name[0] in SEPARATORS or name[-1] in SEPARATORS:
        return "invalid_characters", REASONS["edge_separator"]
    if _DOUBLED_SEPARATOR.search(name):
        return "too_many_special_characters", REASONS["doubled_separator"]
    if sum(ch in SEPARATORS for ch in name) > rules.max_special_ratio * len(name):
        return "too_many_special_characters", REASONS["too_many_special_characters"]
    if len(name) < rules.min_length:
        return "too_short", f"Names must be at least {rules.min_length} characters long."
    if len(name) > rules.max_length:
        return "too_long", _too_long(rules)
    return None


def username_normalize(raw: str, rules: Rules = DEFAULT_RULES) -> Decision:
    """Run the format passes; an ok Decision carries the NFKC display name and its skeleton.

    Surrounding whitespace is dropped; everything else that isn't allowed is refused, never
    silently removed (stripping an invisible character would keep the spoof visible to others).
    """
    text = raw.strip()
    if not text:
        return _reject("empty", REASONS["empty"])
    if len(text) > rules.max_length * RAW_LENGTH_FACTOR:
        return _reject("too_long", _too_long(rules))
    name = unicodedata.normalize("NFKC", text)
    problem = _characters_and_scripts(name) or _separators_and_length(name, rules)
    if problem:
        return _reject(*problem, display_name=name)
    return Decision(ok=True, code="ok", reason="", display_name=name, skeleton=username_skeleton(name))


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _strip_marks(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("M"))


def username_skeleton(name: str) -> str:
    """The form that look-alike names share: "Iimes" and "limes", "paypal" with a Cyrillic a.

    NFKC (a no-op on display names), TR39 skeleton, casefold, skeleton again (casefolding can
    create new look-alikes: Greek capital nu becomes nu, a v), accents dropped, and i merged
    into l: I looks like l, and case-insensitively I is i. Store it unique; never show it
    (TR39: a skeleton is not a normalisation).
    """
    table = confusable_table()
    if name.isascii():  # no marks to decompose or strip: same result, several times faster
        return name.translate(table).casefold().translate(table).replace("i", "l")
    text = _nfd(_nfd(unicodedata.normalize("NFKC", name)).translate(table)).casefold()
    text = _strip_marks(_nfd(_nfd(text).translate(table)))
    return unicodedata.normalize("NFC", text).replace("i", "l")
