"""Blocklist matching: names and terms turned into the same matching forms, then looked up.

A matching form is a string plus its token boundaries. Names and terms go through the same
steps, so the blocklist is written in plain lowercase and still catches variants:

1. NFKC, TR39 confusables for non-ASCII characters (Cyrillic U+0430 → a), accents dropped.
2. Tokens: split on anything that isn't a letter, digit or leet symbol, and at camelCase.
3. Two views: tokens as they are, and tokens also split between letters and digits
   ("admin1" → "admin", "1"); runs of one-character tokens joined ("h.a.t.e" → "hate").
4. Casefold; leetspeak decoded in tokens that contain a letter (digits-only tokens such as
   "1337" stay digits); i/l/1/|/! and u/v merged, as they are used for one another.
5. Repeated letters collapsed to two and to one; m written as rn (its TR39 prototype).

Each step yields one string, so a name has at most 4 forms (2 views x 2 collapses): no
per-character variants, no exponential blow-up.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from apps.moderation.engine.confusables import confusable_table_non_ascii
from apps.moderation.engine.types import Category, Hit, MatchMode, Severity, Term

# Terms shorter than this match whole tokens only, whatever their mode: short strings occur
# inside too many ordinary words ("ass" in "classic", "mod" in "remodel").
MIN_SUBSTRING = 4

_RUN = re.compile(r"(?:[^\W_]|[@$!|+])+")
_DIGIT_SPLIT = re.compile(r"[0-9]+|[^0-9]+")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_EIGHT_AFTER_LETTER = re.compile(r"(?<=[^\W\d_])8")  # "h8", "gr8": 8 reads as "ate"
_REPEAT = re.compile(r"(.)\1")
# One reading per symbol: 1 and | stand for i or l, which are merged anyway (see module doc).
_DECODE = str.maketrans(
    {
        "0": "o",
        "1": "l",
        "2": "z",
        "3": "e",
        "4": "a",
        "5": "s",
        "6": "g",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "l",
        "|": "l",
        "+": "t",
        "i": "l",
        "v": "u",
    }
)
_CATEGORY_RANK = {category: rank for rank, category in enumerate(Category)}

Form = tuple[str, tuple[int, ...]]  # (text, token boundaries including 0 and len(text))


def _strip_marks(text: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.category(ch).startswith("M")
    )


def _unconfuse(text: str) -> str:
    if text.isascii():
        return text
    # TR39 maps the NFD form: precomposed letters are not keys (ö alone maps to Arabic ة).
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    return _strip_marks(decomposed.translate(confusable_table_non_ascii()))


def _camel_split(run: str) -> list[str]:
    tail = run[1:]
    if tail == tail.lower() or run.isupper():
        return [run]
    parts, start = [], 0
    for k in range(1, len(run)):
        prev, ch = run[k - 1], run[k]
        next_is_lower = k + 1 < len(run) and run[k + 1].islower()
        if ch.isupper() and (prev.islower() or (prev.isupper() and next_is_lower)):
            parts.append(run[start:k])
            start = k
    parts.append(run[start:])
    return parts


def _fold(token: str) -> str:
    # Casefolding can produce new look-alikes (Greek capitals), so map again after it.
    return _unconfuse(token.casefold())


def _join_singles(tokens: list[str]) -> list[str]:
    joined: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) == 1:
            run.append(token)
            continue
        if run:
            joined.append("".join(run))
            run = []
        joined.append(token)
    if run:
        joined.append("".join(run))
    return joined


def _decode(token: str) -> str:
    if not _HAS_LETTER.search(token):
        return token
    return _EIGHT_AFTER_LETTER.sub("ate", token).translate(_DECODE)


def _views(text: str) -> set[tuple[str, ...]]:
    """The token lists of `text` before repeat collapsing (one or two views)."""
    tokens = [_fold(part) for run in _RUN.findall(_unconfuse(text)) for part in _camel_split(run)]
    views = {tuple(_decode(token) for token in _join_singles(tokens))}
    split = [part for token in tokens for part in _DIGIT_SPLIT.findall(token)]
    if len(split) != len(tokens):
        views.add(tuple(_decode(token) for token in _join_singles(split)))
    return views


def _collapse(tokens: tuple[str, ...], keep: int) -> tuple[str, ...]:
    """Runs of one character cut to `keep`, also across token boundaries ("bad", "dword")."""
    if not _REPEAT.search("".join(tokens)):
        return tokens
    out: list[str] = []
    prev, count = "", 0
    for token in tokens:
        kept = []
        for ch in token:
            count = count + 1 if ch == prev else 1
            prev = ch
            if count <= keep:
                kept.append(ch)
        if kept:
            out.append("".join(kept))
    return tuple(out)


def _form(tokens: tuple[str, ...]) -> Form:
    bounds = [0]
    parts = []
    for token in tokens:
        part = token.replace("m", "rn")
        parts.append(part)
        bounds.append(bounds[-1] + len(part))
    return "".join(parts), tuple(bounds)


def name_forms(text: str) -> set[Form]:
    """The forms a name is searched in: each view with repeats collapsed to two and to one."""
    collapsed = {_collapse(view, keep) for view in _views(text) for keep in (2, 1) if view}
    return {_form(tokens) for tokens in collapsed}


def term_keys(term: str) -> set[str]:
    """The strings a term is stored under.

    Only the collapse-to-two form: a term with a double letter ("gloop") is then never found in
    a name's collapse-to-one form ("glop"), while "glooooop" still matches.
    """
    return {text for text, _ in (_form(_collapse(view, 2)) for view in _views(term)) if text}


def _allowed_forms(words: Iterable[str]) -> frozenset[str]:
    return frozenset(text for word in words for text, _ in name_forms(word) if text)


@dataclass(frozen=True, slots=True)
class _Entry:
    term: Term
    allowed: frozenset[str]  # matching forms of the term's own allowed words


def _is_short(key: str) -> bool:
    return len(key.replace("rn", "m")) < MIN_SUBSTRING  # in letters as written: "gum" (gurn) is short


def _rank(term: Term) -> tuple[int, int, int]:
    return (0 if term.severity is Severity.REJECT else 1, _CATEGORY_RANK[term.category], term.id)


class Matcher:
    """The blocklist in matching form, built once (`matcher_build`) and shared read-only."""

    __slots__ = ("_allowed", "_entries", "_lengths", "_short")

    def __init__(self, entries: dict[str, tuple[_Entry, ...]], allowed: frozenset[str]) -> None:
        self._entries = entries
        self._allowed = allowed
        lengths: dict[str, set[int]] = {}
        for key in entries:
            if len(key) >= MIN_SUBSTRING:
                lengths.setdefault(key[:MIN_SUBSTRING], set()).add(len(key))
        # Candidate term lengths per 4-character prefix: one dict lookup per position in a name.
        self._lengths = {prefix: tuple(sorted(found)) for prefix, found in lengths.items()}
        self._short = frozenset(key for key in entries if len(key) < MIN_SUBSTRING)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, display_name: str) -> Hit | None:
        """The most severe hit in the name (reject over warning), or None.

        Made for display names, but raw text works too: spaces, `@`, `$` and invisible
        characters are decoded or treated as separators.
        """
        best: Term | None = None
        for text, bounds in name_forms(display_name):
            for start, end, entries in self._candidates(text, bounds):
                for entry in entries:
                    if (best is None or _rank(entry.term) < _rank(best)) and self._counts(
                        entry, text, bounds, start, end
                    ):
                        best = entry.term
        if best is None:
            return None
        return Hit(term_id=best.id, category=best.category, severity=best.severity)

    def _candidates(
        self, text: str, bounds: tuple[int, ...]
    ) -> Iterator[tuple[int, int, tuple[_Entry, ...]]]:
        n = len(text)
        lengths, entries = self._lengths, self._entries  # locals: this loop is the hot path
        for start in range(n - MIN_SUBSTRING + 1):
            for length in lengths.get(text[start : start + MIN_SUBSTRING], ()):
                end = start + length
                if end > n:
                    break
                found = entries.get(text[start:end])
                if found:
                    yield start, end, found
        if not self._short:
            return
        for i, start in enumerate(bounds):
            for end in bounds[i + 1 :]:
                if end - start >= MIN_SUBSTRING:
                    break
                if text[start:end] in self._short:
                    yield start, end, self._entries[text[start:end]]

    def _counts(self, entry: _Entry, text: str, bounds: tuple[int, ...], start: int, end: int) -> bool:
        mode = entry.term.match_mode
        if mode is MatchMode.EXACT:
            return start == 0 and end == len(text)
        aligned_start, aligned_end = start in bounds, end in bounds
        if mode is MatchMode.TOKEN or _is_short(text[start:end]):
            return aligned_start and aligned_end
        crosses = any(start < bound < end for bound in bounds)
        # A hit spanning a separator that starts and ends mid-word is two words meeting
        # ("t[hat_e]agle"); one that begins or ends at a separator is a split term ("bad_word").
        if crosses and not (aligned_start or aligned_end):
            return False
        return not self._excused(entry, text, start, end)

    def _excused(self, entry: _Entry, text: str, start: int, end: int) -> bool:
        """True if an allowed word covers the hit ("scunthorpe" around its substring)."""
        for outer_start in range(start, -1, -1):
            for outer_end in range(end, len(text) + 1):
                word = text[outer_start:outer_end]
                if word in self._allowed or word in entry.allowed:
                    return True
        return False


def matcher_build(terms: Iterable[Term], allowed_words: Iterable[str]) -> Matcher:
    """Build the matcher once per blocklist version; `find` is then safe to call from any thread."""
    entries: dict[str, list[_Entry]] = {}
    for term in terms:
        entry = _Entry(term=term, allowed=_allowed_forms(term.allowed))
        for key in term_keys(term.term):
            entries.setdefault(key, []).append(entry)
    return Matcher({key: tuple(found) for key, found in entries.items()}, _allowed_forms(allowed_words))
