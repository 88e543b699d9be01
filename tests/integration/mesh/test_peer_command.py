"""`manage.py sync_peer_set`: registering peers from the command line (the mesh harness uses it)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from apps.sync.models import Peer


@pytest.mark.django_db
def test_creates_a_peer_with_an_encrypted_secret_then_updates_it_in_place():
    call_command(
        "sync_peer_set", "--name", "seoul", "--url", "http://127.0.0.1:9001", "--region", "kr",
        "--key-id", "mesh-osaka-seoul", "--secret", "s3cret-one", "--primary",
    )  # fmt: skip
    peer = Peer.objects.get(name="seoul")
    assert (peer.url, peer.region, peer.key_id, peer.is_primary, peer.enabled) == (
        "http://127.0.0.1:9001",
        "kr",
        "mesh-osaka-seoul",
        True,
        True,
    )
    assert peer.secret == "s3cret-one"
    assert "s3cret-one" not in peer.secret_encrypted

    call_command(
        "sync_peer_set", "--name", "seoul", "--url", "http://127.0.0.1:9002", "--key-id", "k2", "--disabled"
    )
    peer.refresh_from_db()
    assert (peer.url, peer.key_id, peer.is_primary, peer.enabled) == (
        "http://127.0.0.1:9002",
        "k2",
        False,
        False,
    )
    assert peer.secret == "s3cret-one"  # kept when not given
    assert Peer.objects.count() == 1


@pytest.mark.django_db
def test_one_primary_per_node(monkeypatch):
    monkeypatch.setenv("HAUNT_SYNC_PEER_SECRET", "from-env")
    for name in ("seoul", "nyc"):
        call_command(
            "sync_peer_set", "--name", name, "--url", f"http://{name}.test", "--key-id", name, "--primary"
        )
    assert list(Peer.objects.filter(is_primary=True).values_list("name", flat=True)) == ["nyc"]
    assert Peer.objects.get(name="seoul").secret == "from-env"


@pytest.mark.django_db
def test_a_new_peer_needs_a_secret_and_a_valid_url(monkeypatch):
    monkeypatch.delenv("HAUNT_SYNC_PEER_SECRET", raising=False)
    with pytest.raises(CommandError, match="secret is required"):
        call_command("sync_peer_set", "--name", "nyc", "--url", "http://nyc.test", "--key-id", "k")
    with pytest.raises(CommandError, match="url"):
        call_command("sync_peer_set", "--name", "nyc", "--url", "not a url", "--key-id", "k", "--secret", "x")
    assert not Peer.objects.exists()
