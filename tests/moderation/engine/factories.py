# ruff: noqa: RUF001 (look-alike characters are what these tests are about)
"""A small, clearly fake blocklist for the engine tests (never a real list)."""

from __future__ import annotations

from functools import cache
from typing import Any

from apps.moderation.engine import Category, Matcher, MatchMode, Severity, Term, matcher_build


def make_term(**overrides: Any) -> Term:
    fields: dict[str, Any] = {
        "id": 1,
        "term": "badword",
        "category": Category.PROFANITY,
        "severity": Severity.REJECT,
        "match_mode": MatchMode.SUBSTRING,
    }
    return Term(**(fields | overrides))


FAKE_TERMS = (
    make_term(id=1, term="badword"),
    make_term(id=2, term="hate", category=Category.HATE_GROUPS, allowed=("whatever",)),
    make_term(id=3, term="grob", severity=Severity.WARNING, allowed=("grobular",)),
    make_term(id=4, term="zork", category=Category.VIOLENT_THREATS, match_mode=MatchMode.TOKEN),
    make_term(id=5, term="blorp", category=Category.SLURS, match_mode=MatchMode.EXACT),
    make_term(id=6, term="zeal", category=Category.SEXUAL_HARASSMENT),
    make_term(id=7, term="gloop", category=Category.HOMOPHOBIC_TRANSPHOBIC),
    make_term(id=8, term="bula", severity=Severity.WARNING),
)
IMPERSONATION_TERMS = tuple(
    make_term(id=100 + i, term=word, category=Category.IMPERSONATION, match_mode=mode, allowed=allowed)
    for i, (word, mode, allowed) in enumerate(
        [
            ("admin", MatchMode.TOKEN, ()),
            ("administrator", MatchMode.SUBSTRING, ()),
            ("mod", MatchMode.TOKEN, ()),
            ("moderator", MatchMode.SUBSTRING, ()),
            ("official", MatchMode.TOKEN, ()),
            ("support", MatchMode.TOKEN, ()),
            ("staff", MatchMode.TOKEN, ()),
            ("haunt", MatchMode.SUBSTRING, ("haunted", "haunting")),
        ]
    )
)
# Spellings of "badword" and "hate" by evasion class; every one must be caught.
EVASIONS = {
    "leet": ["b4dw0rd", "h8", "h4te", "8adword", "BADW0RD", "bådw0rd"],
    "symbols": ["b@dword", "h@te", "b@dw0rd", "$$hate$$"],
    "spacing": ["h a t e", "b a d w o r d", "bad word"],
    "punctuation": ["h.a.t.e", "h_a_t_e", "h-a-t-e", "bad.word", "bad_word", "bad-word", "h.4.t.e"],
    "camel_case": ["BadWord", "xXBadWordXx"],
    "repeats": ["haaaate", "baaaadwooooord", "hhhaaattteee", "bad_dword"],
    "embedded": ["xxbadwordxx", "superhater99", "TheBadwordKing"],
    "case": ["HATE", "BaDwOrD"],
    "accents": ["hâté", "ḧäẗë", "bádwörd"],
    "fullwidth_and_math": ["ｂａｄｗｏｒｄ", "𝐡𝐚𝐭𝐞", "𝕙𝕒𝕥𝕖"],
    "cyrillic_greek": ["hаte", "НАТЕ", "ΗΑΤΕ", "bаdwоrd", "ʜᴀᴛᴇ"],
    "zero_width": ["ha\u200bte", "bad\u200dword", "h\u2060a\u2060t\u2060e"],
}
GLOBAL_ALLOWED = ("chateau",)
ALL_TERMS = FAKE_TERMS + IMPERSONATION_TERMS


@cache
def fake_matcher() -> Matcher:
    return matcher_build(ALL_TERMS, GLOBAL_ALLOWED)


def term_by_id(term_id: int) -> Term:
    return next(term for term in ALL_TERMS if term.id == term_id)
