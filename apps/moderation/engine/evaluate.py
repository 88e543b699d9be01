"""The whole check for one name: format passes, then the blocklist and impersonation terms."""

from __future__ import annotations

import dataclasses

from apps.moderation.engine.matching import Matcher
from apps.moderation.engine.normalize import DEFAULT_RULES, username_normalize
from apps.moderation.engine.types import Category, Decision, Hit, Rules, Severity

# Category-level wording only: naming the term would publish the private list.
CATEGORY_LABELS = {
    Category.SLURS: "slurs",
    Category.HOMOPHOBIC_TRANSPHOBIC: "homophobia or transphobia",
    Category.VIOLENT_THREATS: "violent threats",
    Category.SEXUAL_HARASSMENT: "sexual harassment",
    Category.HATE_GROUPS: "extremist groups or symbols",
    Category.PROFANITY: "profanity",
}
# Worded so that none of the usual impersonation terms (official, staff, mod, …) appears in it.
IMPERSONATION_REASON = "This name looks like it belongs to the site's team."
REVIEW_REASON = "This name was accepted and will be reviewed."


def hit_reason(hit: Hit) -> str:
    """The user-facing reason for a hit; it never contains the matched term."""
    if hit.severity is Severity.WARNING:
        return REVIEW_REASON
    if hit.category is Category.IMPERSONATION:
        return IMPERSONATION_REASON
    return f"This name contains language that isn't allowed ({CATEGORY_LABELS[hit.category]})."


def username_evaluate(raw: str, *, matcher: Matcher, rules: Rules = DEFAULT_RULES) -> Decision:
    """Normalise, then match: a warning hit is accepted (ok) but flagged, a reject hit is refused."""
    decision = username_normalize(raw, rules)
    if not decision.ok or decision.display_name is None:
        return decision
    hit = matcher.find(decision.display_name)
    if hit is None:
        return decision
    return dataclasses.replace(
        decision,
        ok=hit.severity is Severity.WARNING,
        code="impersonation" if hit.category is Category.IMPERSONATION else "blocked",
        reason=hit_reason(hit),
        severity=hit.severity,
        category=hit.category,
        term_id=hit.term_id,
    )
