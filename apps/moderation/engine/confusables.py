"""Unicode TR39 confusables: look-alike characters mapped to a prototype (Cyrillic U+0430 → a, Greek U+03BF → o).

The data is Unicode's own confusables.txt (version in its header), shipped in data/ so the
mapping, and with it every stored skeleton, changes only when someone replaces that file.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "confusables.txt"

# Gaps in confusables.txt that matter for names: Latin small capitals (ᴀ, ʜ, ꜰ) have no
# mapping, and ᴋ/κ map to kra (ĸ) rather than k.
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")
_SMALL_CAPITAL_BLOCKS = (range(0x0250, 0x02B0), range(0x1D00, 0x1D80), range(0xA700, 0xA800))


def _supplement() -> dict[str, str]:
    extra = {"ĸ": "k"}
    for block in _SMALL_CAPITAL_BLOCKS:
        for code in block:
            found = _SMALL_CAPITAL.fullmatch(unicodedata.name(chr(code), ""))
            if found:
                extra[chr(code)] = found.group(1).lower()
    return extra


def _parse(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        data = line.split("#", 1)[0].strip()
        if not data:
            continue
        source, target = (field.strip() for field in data.split(";")[:2])
        mapping[chr(int(source, 16))] = "".join(chr(int(code, 16)) for code in target.split())
    return mapping


@cache
def confusable_table() -> dict[int, str]:
    """The prototype of every confusable character, as a `str.translate` table."""
    extra = _supplement()
    mapping = _parse(DATA_FILE.read_text(encoding="utf-8-sig"))
    mapping = {source: "".join(extra.get(ch, ch) for ch in target) for source, target in mapping.items()}
    for source, target in extra.items():
        mapping.setdefault(source, target)
    return {ord(source): target for source, target in mapping.items()}


@cache
def confusable_table_non_ascii() -> dict[int, str]:
    """Like `confusable_table`, leaving ASCII alone (the matcher decodes ASCII as leetspeak)."""
    return {code: target for code, target in confusable_table().items() if code >= 0x80}
