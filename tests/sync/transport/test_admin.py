"""The sync admin pages render for a superuser; peers keep secrets write-only; conflicts show
side by side and resolve; dead letters retry."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.sync.models import NodeMetric, Peer, PeerAck, SyncConflict, SyncCursor, SyncDeadLetter, SyncSession
from apps.trading.models import Profile
from tests.conftest import make_user
from tests.sync.transport.conftest import SECRET, make_peer
from tests.sync.transport.test_monitoring_api import make_conflict

pytestmark = pytest.mark.django_db

SYNC_MODELS = [m for m in admin.site._registry if m._meta.app_label == "sync"]


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def rows(peer: Peer) -> dict[type, object]:
    profile = Profile.objects.create(user=make_user("ivy"), username="ivy", theme="light")
    return {
        Peer: peer,
        SyncConflict: make_conflict(profile=profile),
        SyncSession: SyncSession.objects.create(
            peer=peer, lane=0, rows=5, outcome="ok", finished_at=timezone.now()
        ),
        NodeMetric: NodeMetric.objects.create(peer=peer, lane=0, lag_seconds=0.2),
        PeerAck: PeerAck.objects.create(peer=peer, lane=0, seq=3),
        SyncCursor: SyncCursor.objects.create(peer=peer.name, lane=0, seq=3, head=6),
        SyncDeadLetter: SyncDeadLetter.objects.create(
            peer=peer.name, lane=0, entity="profiles", entity_id=uuid.uuid4(), row={"x": 1}, reason="bad_data"
        ),
    }


def test_every_sync_model_is_registered():
    names = {m.__name__ for m in SYNC_MODELS}

    assert {
        "Peer",
        "SyncConflict",
        "SyncDeadLetter",
        "SyncSession",
        "EntitySyncConfig",
        "SyncCursor",
    } <= names


@pytest.mark.parametrize("model", SYNC_MODELS, ids=lambda m: m.__name__)
def test_changelist_and_change_pages_render(admin_client: Client, rows: dict, model: type):
    opts = model._meta

    changelist = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    obj = rows.get(model) or model._default_manager.first()

    assert changelist.status_code == 200
    if obj is not None:
        change = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200


def test_adding_a_peer_stores_the_secret_encrypted_and_never_shows_it(admin_client: Client):
    secret = "an-admin-entered-secret-of-enough-length-0001"

    response = admin_client.post(
        reverse("admin:sync_peer_add"),
        {
            "name": "nyc",
            "url": "https://nyc.example",
            "region": "us-east",
            "key_id": "k-nyc",
            "secret": secret,
            "enabled": "on",
        },
    )
    peer = Peer.objects.get(name="nyc")
    page = admin_client.get(reverse("admin:sync_peer_change", args=[peer.pk])).content.decode()

    assert response.status_code == 302
    assert peer.secret == secret and secret not in peer.secret_encrypted
    assert secret not in page and peer.secret_encrypted not in page


def test_editing_a_peer_without_a_secret_keeps_the_old_one(admin_client: Client, peer: Peer):
    response = admin_client.post(
        reverse("admin:sync_peer_change", args=[peer.pk]),
        {
            "name": peer.name,
            "url": "https://seoul.example",
            "region": "ap",
            "key_id": peer.key_id,
            "secret": "",
            "enabled": "on",
        },
    )

    peer.refresh_from_db()
    assert response.status_code == 302
    assert peer.url == "https://seoul.example" and peer.secret == SECRET


def test_a_new_peer_needs_a_secret(admin_client: Client):
    response = admin_client.post(
        reverse("admin:sync_peer_add"),
        {"name": "nyc", "url": "https://nyc.example", "key_id": "k", "secret": ""},
    )

    assert response.status_code == 200 and not Peer.objects.filter(name="nyc").exists()


def test_conflict_page_shows_both_versions_with_the_differing_field_marked(admin_client: Client, rows: dict):
    conflict = rows[SyncConflict]

    page = admin_client.get(reverse("admin:sync_syncconflict_change", args=[conflict.pk])).content.decode()

    assert '<tr class="sync-differs"' in page
    assert "&quot;dark&quot;" in page and "&quot;light&quot;" in page
    assert "B: local — local" in page  # b was written on this node


def test_resolving_with_a_merged_version_from_the_admin(admin_client: Client, rows: dict):
    conflict = rows[SyncConflict]
    url = reverse("admin:sync_syncconflict_resolve", args=[conflict.pk])

    form = admin_client.get(url)
    response = admin_client.post(url, {"choice": "merged", "merged": json.dumps({"theme": "system"})})

    assert form.status_code == 200 and b"sync-differs" in form.content
    assert response.status_code == 302
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolution) == ("resolved", "merged")
    assert Profile.objects.get(pk=conflict.row_id).theme == "system"


def test_keep_local_action_resolves_the_selected_conflicts(admin_client: Client, rows: dict):
    conflict = rows[SyncConflict]

    response = admin_client.post(
        reverse("admin:sync_syncconflict_changelist"),
        {"action": "keep_local", "_selected_action": [conflict.pk]},
    )

    conflict.refresh_from_db()
    assert response.status_code == 302
    assert (conflict.status, conflict.resolution) == ("resolved", "local")
    assert Profile.objects.get(pk=conflict.row_id).theme == "light"


def test_retrying_a_dead_letter_applies_its_row(admin_client: Client):
    from apps.sync.feed import row_checksum
    from apps.sync.models.base import capture_disabled
    from apps.sync.reconcile import rows_export

    make_peer("seoul", key_id="k2")
    profile = Profile.objects.create(user=make_user("jack"), username="jack")
    page = rows_export(entity="profiles", ids=[str(profile.pk)])
    (row,) = page["rows"]
    row |= {"origin": "seoul"}
    row["sha256"] = row_checksum(row)
    with capture_disabled():
        Profile.objects.filter(pk=profile.pk).delete()
    letter = SyncDeadLetter.objects.create(
        peer="seoul",
        lane=page["lane"],
        entity=row["entity"],
        entity_id=profile.pk,
        row=row,
        reason="bad_data",
        status=SyncDeadLetter.Status.DEAD,
    )

    response = admin_client.post(
        reverse("admin:sync_syncdeadletter_changelist"), {"action": "retry", "_selected_action": [letter.pk]}
    )

    letter.refresh_from_db()
    assert response.status_code == 302
    assert letter.status == SyncDeadLetter.Status.RESOLVED
    assert Profile.objects.filter(pk=profile.pk, username="jack").exists()
