"""The username engine's contract: pure data in, a decision out (no ORM, no settings).

The Django side (apps.moderation.services) loads terms and allowed words from the database,
builds a Matcher once (cached), and calls the engine; the engine never sees a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    SLURS = "slurs"
    HOMOPHOBIC_TRANSPHOBIC = "homophobic_transphobic"
    VIOLENT_THREATS = "violent_threats"
    SEXUAL_HARASSMENT = "sexual_harassment"
    HATE_GROUPS = "hate_groups"
    PROFANITY = "profanity"
    IMPERSONATION = "impersonation"


class Severity(StrEnum):
    WARNING = "warning"  # accepted, flagged for review
    REJECT = "reject"


class MatchMode(StrEnum):
    TOKEN = "token"  # noqa: S105 (not a password) — the term is a whole token of the name (after tokenising)
    SUBSTRING = "substring"  # anywhere, unless the containing token is an allowed word
    EXACT = "exact"  # the whole name, in matching form, is the term


@dataclass(frozen=True, slots=True)
class Term:
    id: int
    term: str
    category: Category
    severity: Severity
    match_mode: MatchMode
    allowed: tuple[str, ...] = ()  # words that excuse a substring hit of this term only


@dataclass(frozen=True, slots=True)
class Rules:
    min_length: int = 3
    max_length: int = 24
    max_special_ratio: float = 0.34  # share of `_ - .` characters allowed in a name


@dataclass(frozen=True, slots=True)
class Hit:
    term_id: int
    category: Category
    severity: Severity


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one name. `reason` is safe to show: it never contains a matched term."""

    ok: bool  # True: accepted (severity may still be WARNING: accept and flag for review)
    code: str  # "ok", "empty", "too_long", "too_short", "invalid_characters", "invisible_characters",
    # "mixed_scripts", "too_many_special_characters", "blocked", "impersonation"
    reason: str
    display_name: str | None = None  # the NFKC form to store and show
    skeleton: str | None = None  # the matching form, for uniqueness ("Iimes" == "limes")
    severity: Severity | None = None
    category: Category | None = None
    term_id: int | None = None  # for the moderation log only
