"""Username moderation services: validating and changing names, appeals, reviews, the blocklist."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.moderation.engine import Matcher, matcher_build, username_evaluate, username_normalize
from apps.moderation.engine.types import Category, Decision, MatchMode, Rules, Severity, Term
from apps.moderation.exceptions import (
    AppealAlreadyDecided,
    AppealAlreadyPending,
    BlocklistFormatError,
    NotAppealable,
    UsernameChangeTooSoon,
    UsernameRejected,
    UsernameTaken,
)
from apps.moderation.models import (
    AllowedWord,
    BlockedTerm,
    UsernameAppeal,
    UsernameModerationEvent,
    UsernameReview,
    UsernameWhitelist,
)
from apps.trading.models import Profile
from apps.trading.services import (
    UsernameSkeletonTaken,
    profile_ensure,
    profile_username_reset,
    profile_username_set,
)
from haunt.services import notification_send

logger = logging.getLogger(__name__)

CHANGE_INTERVAL = timedelta(hours=24)
APPEALABLE = {"blocked", "impersonation"}
_VERSION_KEY = "moderation:blocklist:version"
_matcher_cache: tuple[str, Matcher] | None = None


# --- the blocklist matcher, built once per process per list version --------------------------


def _blocklist_version() -> str:
    # A random token, not a counter: if the cache is flushed, the next token is new as well, so
    # no process mistakes its old matcher for the current one.
    cache.add(_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    return str(cache.get(_VERSION_KEY))


def blocklist_changed() -> None:
    """Make every process rebuild its matcher on its next use."""
    cache.set(_VERSION_KEY, uuid.uuid4().hex, timeout=None)


def blocklist_matcher() -> Matcher:
    """The matcher for the active terms and allowed words (rebuilt when they change)."""
    global _matcher_cache
    version = _blocklist_version()
    if _matcher_cache is None or _matcher_cache[0] != version:
        terms = [
            Term(
                id=t.pk,
                term=t.term,
                category=Category(t.category),
                severity=Severity(t.severity),
                match_mode=MatchMode(t.match_mode),
                allowed=tuple(a.word for a in t.allowed_words.all()),
            )
            for t in BlockedTerm.objects.filter(is_active=True).prefetch_related("allowed_words")
        ]
        allowed = AllowedWord.objects.filter(blocked_term=None).values_list("word", flat=True)
        _matcher_cache = (version, matcher_build(terms, list(allowed)))
    return _matcher_cache[1]


def username_rules() -> Rules:
    return Rules(min_length=settings.HAUNT_USERNAME_MIN_LENGTH, max_length=settings.HAUNT_USERNAME_MAX_LENGTH)


# --- validating names -----------------------------------------------------------------------


def _whitelisted(user: User | None, display_name: str | None) -> bool:
    if user is None or display_name is None:
        return False
    return UsernameWhitelist.objects.filter(user=user, display_name=display_name).exists()


def _log(*, user: User | None, raw: str, decision: Decision, source: str) -> None:
    UsernameModerationEvent.objects.create(
        user=user,
        attempted_name=(decision.display_name or raw)[:128],
        code=decision.code,
        category=decision.category or "",
        severity=decision.severity or "",
        term_id=decision.term_id,
        source=source,
    )


def username_validate(*, user: User | None, raw: str, source: str = "check") -> Decision:
    """Every pass but uniqueness; a name a moderator whitelisted for this user skips the list.

    Refusals and warnings are logged (with the term, which never leaves the back office).
    """
    rules = username_rules()
    normalized = username_normalize(raw, rules)
    if normalized.ok and _whitelisted(user, normalized.display_name):
        return normalized
    decision = (
        username_evaluate(raw, matcher=blocklist_matcher(), rules=rules) if normalized.ok else normalized
    )
    if not decision.ok or decision.severity == Severity.WARNING:
        _log(user=user, raw=raw, decision=decision, source=source)
    return decision


def username_taken(*, user: User | None, skeleton: str | None) -> bool:
    """Another user already has a name with this matching form."""
    if not skeleton:
        return False
    others = Profile.objects.filter(username_skeleton=skeleton)
    return others.exclude(user=user).exists() if user is not None else others.exists()


@dataclass(frozen=True)
class UsernameCheck:
    decision: Decision
    available: bool

    @property
    def ok(self) -> bool:
        return self.decision.ok and self.available

    @property
    def code(self) -> str:
        return self.decision.code if not self.decision.ok or self.available else "username_taken"

    @property
    def reason(self) -> str:
        return self.decision.reason if not self.decision.ok or self.available else "That name is taken."


def username_check(*, user: User, raw: str) -> UsernameCheck:
    """Would this name be accepted for this user right now? Changes nothing but the log."""
    decision = username_validate(user=user, raw=raw)
    return UsernameCheck(decision, decision.ok and not username_taken(user=user, skeleton=decision.skeleton))


def _retry_after(profile: Profile) -> int:
    if profile.username_changed_at is None:
        return 0
    remaining = profile.username_changed_at + CHANGE_INTERVAL - timezone.now()
    return max(0, int(remaining.total_seconds()) + 1)


def username_change(*, user: User, raw: str) -> tuple[Profile, Decision]:
    """Change the user's public name: at most once per 24 hours; a refused attempt does not count.

    Validation (and its log entry) happens outside the transaction, so a refusal is recorded even
    though nothing else is written. A name accepted with a warning is used and queued for review.
    """
    _raise_if_too_soon(profile_ensure(user=user))
    decision = username_validate(user=user, raw=raw, source="change")
    if not decision.ok:
        raise UsernameRejected(decision.reason, code=decision.code, category=decision.category)
    assert decision.display_name is not None and decision.skeleton is not None
    return _username_apply(user=user, decision=decision), decision


@transaction.atomic
def _username_apply(*, user: User, decision: Decision) -> Profile:
    assert decision.display_name is not None and decision.skeleton is not None
    # Re-checked under the row lock: two concurrent changes must not both pass the limit.
    _raise_if_too_soon(Profile.objects.select_for_update().get(user=user))
    if username_taken(user=user, skeleton=decision.skeleton):
        raise UsernameTaken("That name, or one that looks just like it, is taken.")
    try:
        profile = profile_username_set(
            user=user, display_name=decision.display_name, skeleton=decision.skeleton
        )
    except UsernameSkeletonTaken:
        raise UsernameTaken("That name, or one that looks just like it, is taken.") from None
    if decision.severity == Severity.WARNING:
        _review_open(user=user, decision=decision, source="change")
    return profile


def _raise_if_too_soon(profile: Profile) -> None:
    wait = _retry_after(profile)
    if wait:
        raise UsernameChangeTooSoon("You can change your username once every 24 hours.", retry_after=wait)


def _review_open(*, user: User, decision: Decision, source: str) -> None:
    assert decision.display_name is not None
    UsernameReview.objects.get_or_create(
        user=user,
        display_name=decision.display_name,
        status=UsernameReview.Status.PENDING,
        defaults={"category": decision.category or "", "severity": decision.severity or "", "source": source},
    )


# --- appeals and reviews --------------------------------------------------------------------


@transaction.atomic
def username_appeal_submit(*, user: User, raw: str, message: str) -> UsernameAppeal:
    """Appeal a name the blocklist refused; other refusals (format, length) are not appealable."""
    decision = username_validate(user=user, raw=raw, source="appeal")
    if decision.ok or decision.code not in APPEALABLE:
        raise NotAppealable("Only names refused for their content can be appealed.", code=decision.code)
    assert decision.display_name is not None
    if UsernameAppeal.objects.filter(
        user=user, requested_name=decision.display_name, status=UsernameAppeal.Status.PENDING
    ).exists():
        raise AppealAlreadyPending("You already have a pending appeal for this name.")
    return UsernameAppeal.objects.create(
        user=user, requested_name=decision.display_name, message=message, category=decision.category or ""
    )


def _appeal_locked(appeal: UsernameAppeal) -> UsernameAppeal:
    appeal = UsernameAppeal.objects.select_for_update().get(pk=appeal.pk)
    if appeal.status != UsernameAppeal.Status.PENDING:
        raise AppealAlreadyDecided(f"This appeal was already {appeal.status}.")
    return appeal


@transaction.atomic
def username_appeal_approve(
    *, appeal: UsernameAppeal, moderator: User, allow_word: bool = False, note: str = ""
) -> UsernameAppeal:
    """Whitelist the exact name for that user (optionally for everyone) and tell the user."""
    appeal = _appeal_locked(appeal)
    appeal.status, appeal.decided_by, appeal.decided_at = (
        UsernameAppeal.Status.APPROVED,
        moderator,
        timezone.now(),
    )
    appeal.moderator_note = note
    appeal.save(update_fields=["status", "decided_by", "decided_at", "moderator_note"])
    UsernameWhitelist.objects.get_or_create(
        user=appeal.user,
        display_name=appeal.requested_name,
        defaults={"approved_by": moderator, "appeal": appeal},
    )
    if allow_word:
        AllowedWord.objects.get_or_create(
            word=appeal.requested_name.lower(), blocked_term=None, defaults={"reason": f"appeal {appeal.pk}"}
        )
    notification_send(
        user=appeal.user,
        kind="username.appeal_approved",
        title="Your username appeal was approved",
        body=f"You can now use the name {appeal.requested_name}.",
        data={"appealId": appeal.pk, "name": appeal.requested_name},
    )
    return appeal


@transaction.atomic
def username_appeal_deny(*, appeal: UsernameAppeal, moderator: User, note: str = "") -> UsernameAppeal:
    appeal = _appeal_locked(appeal)
    appeal.status, appeal.decided_by, appeal.decided_at = (
        UsernameAppeal.Status.DENIED,
        moderator,
        timezone.now(),
    )
    appeal.moderator_note = note
    appeal.save(update_fields=["status", "decided_by", "decided_at", "moderator_note"])
    notification_send(
        user=appeal.user,
        kind="username.appeal_denied",
        title="Your username appeal was denied",
        body=note or "A moderator reviewed the name and kept the refusal.",
        data={"appealId": appeal.pk},
    )
    return appeal


@transaction.atomic
def username_review_decide(*, review: UsernameReview, moderator: User, keep: bool) -> UsernameReview:
    """Keep a flagged name (whitelisting it for that user) or reset it to a neutral one."""
    review = UsernameReview.objects.select_for_update().get(pk=review.pk)
    if review.status != UsernameReview.Status.PENDING:
        return review
    if keep:
        UsernameWhitelist.objects.get_or_create(
            user=review.user, display_name=review.display_name, defaults={"approved_by": moderator}
        )
    else:
        profile_username_reset(user=review.user)
        notification_send(
            user=review.user,
            kind="username.reset",
            title="Please choose a new username",
            body="A moderator reset your username; you can pick a new one now.",
        )
    review.status = UsernameReview.Status.KEPT if keep else UsernameReview.Status.RESET
    review.decided_by, review.decided_at = moderator, timezone.now()
    review.save(update_fields=["status", "decided_by", "decided_at"])
    return review


def usernames_recheck(*, batch_size: int = 500) -> int:
    """Re-check names in use against the current list; flag the ones it would now refuse or
    warn about (leaderboards hide pending refusals). Returns how many were flagged."""
    matcher, rules, flagged = blocklist_matcher(), username_rules(), 0
    profiles = Profile.objects.exclude(username_skeleton="").select_related("user").order_by("pk")
    for profile in profiles.iterator(chunk_size=batch_size):
        if _whitelisted(profile.user, profile.username):
            continue
        decision = username_evaluate(profile.username, matcher=matcher, rules=rules)
        if decision.severity is None or decision.display_name is None:
            continue
        with transaction.atomic():
            _review_open(user=profile.user, decision=decision, source="recheck")
        flagged += 1
    return flagged


# --- loading the blocklist ------------------------------------------------------------------


@dataclass(frozen=True)
class BlocklistImport:
    created: int
    updated: int


def _blocklist_rows(text: str, *, default_category: str) -> list[dict[str, str]]:
    """CSV rows `term,category[,severity[,match_mode]]` (header optional), or one term a line.

    Lines starting with # are comments. Errors name the line.
    """
    rows: list[dict[str, str]] = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not fields[0].strip() or fields[0].lstrip().startswith("#"):
            continue
        if not rows and fields[0].strip().lower() == "term":
            continue  # a header row
        values = [f.strip() for f in fields] + [""] * 3
        row = {
            "term": values[0].lower(),
            "category": values[1] or default_category,
            "severity": values[2] or Severity.REJECT,
            "match_mode": values[3] or MatchMode.SUBSTRING,
        }
        for name, enum in (("category", Category), ("severity", Severity), ("match_mode", MatchMode)):
            if row[name] not in {e.value for e in enum}:
                raise BlocklistFormatError(f"Line {number}: unknown {name} {row[name]!r}.", line=number)
        if len(row["term"]) > 64:
            raise BlocklistFormatError(f"Line {number}: term longer than 64 characters.", line=number)
        rows.append(row)
    return rows


@transaction.atomic
def blocklist_import(*, text: str, default_category: str = Category.PROFANITY) -> BlocklistImport:
    """Add or update terms from a blocklist file's text; all or nothing."""
    created = updated = 0
    for row in _blocklist_rows(text, default_category=default_category):
        _, was_created = BlockedTerm.objects.update_or_create(
            term=row.pop("term"), defaults={**row, "is_active": True}
        )
        created, updated = created + was_created, updated + (not was_created)
    transaction.on_commit(blocklist_changed)
    return BlocklistImport(created=created, updated=updated)
