"""The replicated base model keeps id / version / last_modified_* right on every write path."""

import uuid

import pytest
from django.core import checks
from django.test import override_settings

from apps.sync.models import ReplicationPathForbidden
from apps.trading.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def make_profile(name: str = "alice") -> Profile:
    return Profile.objects.create(user=make_user(name), username=name)


def test_primary_keys_are_time_ordered_uuid7():
    first, second = make_profile("alice"), make_profile("bob")

    assert isinstance(first.pk, uuid.UUID)
    assert first.pk.version == 7
    assert first.pk < second.pk  # later rows sort after earlier ones


@override_settings(HAUNT_NODE_ID="osaka")
def test_create_stamps_version_one_and_this_node():
    profile = make_profile()

    profile.refresh_from_db()
    assert (profile.version, profile.last_modified_by) == (1, "osaka")


def test_save_bumps_version_and_time():
    profile = make_profile()
    created_at = profile.last_modified_at

    with override_settings(HAUNT_NODE_ID="seoul"):
        profile.theme = "dark"
        profile.save()

    profile.refresh_from_db()
    assert profile.version == 2
    assert profile.last_modified_by == "seoul"
    assert profile.last_modified_at > created_at


def test_save_with_update_fields_still_writes_the_stamps():
    profile = make_profile()

    profile.theme = "light"
    profile.save(update_fields=["theme"])

    profile.refresh_from_db()
    assert (profile.theme, profile.version) == ("light", 2)


def test_queryset_update_bumps_every_row():
    make_profile("alice"), make_profile("bob")

    with override_settings(HAUNT_NODE_ID="nyc"):
        changed = Profile.objects.all().update(theme="dark")

    assert changed == 2
    assert set(Profile.objects.values_list("version", "last_modified_by")) == {(2, "nyc")}


def test_bulk_update_bumps_versions():
    profiles = [make_profile("alice"), make_profile("bob")]
    for profile in profiles:
        profile.theme = "dark"

    Profile.objects.bulk_update(profiles, ["theme"])

    assert list(Profile.objects.values_list("version", flat=True)) == [2, 2]


@override_settings(HAUNT_NODE_ID="osaka")
def test_bulk_create_stamps_rows():
    users = [make_user("alice"), make_user("bob")]

    Profile.objects.bulk_create([Profile(user=u, username=u.username) for u in users])

    assert set(Profile.objects.values_list("version", "last_modified_by")) == {(1, "osaka")}


def test_setting_stamps_by_hand_is_forbidden():
    make_profile()

    with pytest.raises(ReplicationPathForbidden):
        Profile.objects.update(version=99)
    assert Profile.objects.get().version == 1


def test_upserts_are_forbidden():
    user = make_user("alice")

    with pytest.raises(ReplicationPathForbidden):
        Profile.objects.bulk_create(
            [Profile(user=user)], update_conflicts=True, unique_fields=["user"], update_fields=["theme"]
        )


def test_system_check_passes_for_the_project_models():
    errors = [e for e in checks.run_checks() if e.id == "haunt.E001"]

    assert errors == []
