from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.moderation.exceptions import (
    NotAppealable,
    UsernameChangeTooSoon,
    UsernameRejected,
    UsernameTaken,
)
from apps.moderation.models import (
    AllowedWord,
    BlockedTerm,
    UsernameModerationEvent,
    UsernameReview,
)
from apps.moderation.selectors import usernames_hidden
from apps.moderation.services import (
    blocklist_import,
    username_appeal_approve,
    username_appeal_submit,
    username_change,
    username_validate,
    usernames_recheck,
)
from apps.trading.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_a_clean_name_is_set_and_stamped(user, blocklist):
    profile, decision = username_change(user=user, raw="MoonTrader")

    assert (profile.username, decision.severity) == ("MoonTrader", None)
    assert profile.username_changed_at is not None


def test_refused_name_is_logged_with_the_term_but_the_reason_hides_it(user, blocklist):
    with pytest.raises(UsernameRejected) as refused:
        username_change(user=user, raw="xXbadwordXx")

    event = UsernameModerationEvent.objects.get()
    assert refused.value.code == "blocked"
    assert "badword" not in refused.value.message.lower()
    assert (event.code, event.category, event.term.term) == ("blocked", "slurs", "badword")


def test_refused_attempts_do_not_use_up_the_daily_change(user, blocklist):
    with pytest.raises(UsernameRejected):
        username_change(user=user, raw="badword")

    profile, _ = username_change(user=user, raw="GoodName")

    assert profile.username == "GoodName"


def test_second_change_within_24_hours_is_rate_limited(user, blocklist):
    username_change(user=user, raw="FirstName")

    with pytest.raises(UsernameChangeTooSoon) as limited:
        username_change(user=user, raw="SecondName")

    assert 0 < limited.value.detail["retry_after"] <= 24 * 3600
    assert limited.value.headers["Retry-After"] == str(limited.value.detail["retry_after"])


def test_change_allowed_again_after_24_hours(user, blocklist):
    username_change(user=user, raw="FirstName")
    Profile.objects.filter(user=user).update(
        username_changed_at=timezone.now() - timedelta(hours=24, seconds=1)
    )

    profile, _ = username_change(user=user, raw="SecondName")

    assert profile.username == "SecondName"


def test_look_alike_of_a_taken_name_is_refused(user, outsider, blocklist):
    username_change(user=outsider, raw="limes")

    with pytest.raises(UsernameTaken):
        username_change(user=user, raw="Iimes")  # capital I for l


def test_warning_level_name_is_accepted_and_queued_for_review(user, blocklist):
    profile, decision = username_change(user=user, raw="meh_trader")

    review = UsernameReview.objects.get()
    assert profile.username == "meh_trader"
    assert decision.severity == "warning"
    assert (review.display_name, review.status, review.source) == ("meh_trader", "pending", "change")
    assert user.pk not in usernames_hidden()  # warnings stay visible while reviewed


def test_impersonation_is_refused(user, blocklist):
    with pytest.raises(UsernameRejected) as refused:
        username_change(user=user, raw="Haunt_Admin")

    assert refused.value.code == "impersonation"


def test_only_content_refusals_can_be_appealed(user, blocklist):
    with pytest.raises(NotAppealable):
        username_appeal_submit(user=user, raw="ab", message="too short?")


def test_approved_appeal_whitelists_the_name_for_that_user_only(user, outsider, blocklist):
    moderator = make_user("mod_jane")
    appeal = username_appeal_submit(user=user, raw="Grobian", message="It is my surname.")

    username_appeal_approve(appeal=appeal, moderator=moderator)

    profile, _ = username_change(user=user, raw="Grobian")
    assert profile.username == "Grobian"
    assert not username_validate(user=outsider, raw="Grobianx").ok
    assert user.notifications.filter(kind="username.appeal_approved").exists()


def test_approving_with_allow_word_frees_the_word_for_everyone(
    user, outsider, blocklist, django_capture_on_commit_callbacks
):
    appeal = username_appeal_submit(user=user, raw="Grobian", message="A real word.")

    with django_capture_on_commit_callbacks(execute=True):
        username_appeal_approve(appeal=appeal, moderator=make_user("mod_jane"), allow_word=True)

    assert AllowedWord.objects.filter(word="grobian").exists()
    assert username_validate(user=outsider, raw="grobian").ok


def test_matcher_is_rebuilt_when_the_list_changes(user, blocklist, django_capture_on_commit_callbacks):
    assert username_validate(user=user, raw="quuxfan").ok

    with django_capture_on_commit_callbacks(execute=True):
        BlockedTerm.objects.create(term="quux", category="profanity")

    assert not username_validate(user=user, raw="quuxfan").ok


def test_recheck_flags_names_the_new_list_refuses_and_hides_them(
    user, blocklist, django_capture_on_commit_callbacks
):
    username_change(user=user, raw="quuxfan")
    with django_capture_on_commit_callbacks(execute=True):
        BlockedTerm.objects.create(term="quux", category="profanity")

    flagged = usernames_recheck()

    assert flagged == 1
    assert UsernameReview.objects.get().source == "recheck"
    assert user.pk in usernames_hidden()


def test_import_is_all_or_nothing_and_names_the_bad_line(db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("alpha,profanity\nbeta,not_a_category\n")

    with pytest.raises(CommandError, match="Line 2"):
        call_command("load_blocklist", str(path))

    assert not BlockedTerm.objects.exists()


def test_plain_text_list_gets_the_default_category(db, tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# comment\nalpha\nbeta\n")

    call_command("load_blocklist", str(path), "--category", "hate_groups")

    assert set(BlockedTerm.objects.values_list("term", "category")) == {
        ("alpha", "hate_groups"),
        ("beta", "hate_groups"),
    }


def test_reimport_updates_instead_of_duplicating(db):
    blocklist_import(text="alpha,profanity,warning\n")

    result = blocklist_import(text="alpha,profanity,reject\n")

    assert (result.created, result.updated) == (0, 1)
    assert BlockedTerm.objects.get().severity == "reject"
