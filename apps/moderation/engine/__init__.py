"""Username moderation engine: pure Python, no Django. See types.py for the contract."""

from apps.moderation.engine.evaluate import hit_reason, username_evaluate
from apps.moderation.engine.matching import Matcher, matcher_build
from apps.moderation.engine.normalize import username_normalize, username_skeleton
from apps.moderation.engine.types import Category, Decision, Hit, MatchMode, Rules, Severity, Term

__all__ = [
    "Category",
    "Decision",
    "Hit",
    "MatchMode",
    "Matcher",
    "Rules",
    "Severity",
    "Term",
    "hit_reason",
    "matcher_build",
    "username_evaluate",
    "username_normalize",
    "username_skeleton",
]
