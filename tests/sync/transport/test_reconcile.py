"""Anti-entropy: bucket checksums compared with a peer, differing rows fetched and repaired."""

from __future__ import annotations

from typing import Any

import pytest

from apps.sync.clients import PeerResponse, PeerUnavailable
from apps.sync.feed import row_checksum
from apps.sync.models import Peer, SyncSession
from apps.sync.models.base import capture_disabled
from apps.sync.reconcile import bucket_checksums, bucket_rows, rows_export
from apps.sync.tasks import sync_reconcile_task
from apps.sync.worker import reconcile_peer
from apps.trading.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


class SnapshotPeer:
    """A peer whose state is a snapshot of this node's tables taken earlier (the edge: no HTTP)."""

    def __init__(self, entity: str, *, origin: str) -> None:
        self.checksums = bucket_checksums(entity=entity, buckets=256)
        self.rows = {b: bucket_rows(entity=entity, bucket=b, buckets=256) for b in range(256)}
        self.entity = entity
        self.origin = origin
        self.exported: list[str] = []
        self.pages: dict[str, dict[str, Any]] = {}
        for bucket_list in self.rows.values():
            for row_id, _, _ in bucket_list:
                page = rows_export(entity=entity, ids=[row_id])
                for row in page["rows"]:
                    row["origin"] = origin
                    row["sha256"] = row_checksum(row)
                self.pages[row_id] = page

    def _ok(self, body: Any) -> PeerResponse:
        return PeerResponse(
            body=body, status=200, wire_bytes=10, rtt_ms=1, server_elapsed_ms=0, clock_offset_ms=0
        )

    def buckets(self, *, entity: str, buckets: int) -> PeerResponse:
        sums = self.checksums if entity == self.entity else bucket_checksums(entity=entity, buckets=buckets)
        return self._ok({"entity": entity, "buckets": sums})

    def bucket_rows(self, *, entity: str, bucket: int, buckets: int) -> PeerResponse:
        return self._ok({"entity": entity, "bucket": bucket, "rows": self.rows[bucket]})

    def rows_export(self, *, entity: str, ids: list[str]) -> PeerResponse:
        from apps.sync.feed import page_checksum

        self.exported.extend(ids)
        rows = [row for i in ids for row in self.pages[i]["rows"]]
        page = {**self.pages[ids[0]], "rows": rows}
        page["checksum"] = page_checksum(page)
        return self._ok(page)

    def close(self) -> None:
        pass


@pytest.fixture
def peer(db: None) -> Peer:
    from tests.sync.transport.conftest import make_peer

    return make_peer("seoul")


def test_a_row_missing_here_is_fetched_from_the_peer_and_repaired(peer: Peer):
    kept = Profile.objects.create(user=make_user("kim"), username="kim")
    lost = Profile.objects.create(user=make_user("lee"), username="lee")
    remote = SnapshotPeer("profiles", origin=peer.name)
    with capture_disabled():
        Profile.objects.filter(pk=lost.pk).delete()  # a gap, as a bug or lost page would leave

    result = reconcile_peer(peer=peer, entities=["profiles"], client=remote)  # type: ignore[arg-type]

    assert result.error == ""
    assert result.buckets_differing == 1
    assert remote.exported == [str(lost.pk)]  # only the differing row travels
    assert Profile.objects.filter(pk=lost.pk, username="lee").exists()
    assert Profile.objects.filter(pk=kept.pk).exists()
    assert bucket_checksums(entity="profiles") == remote.checksums
    session = SyncSession.objects.get(kind="reconcile")
    assert (session.outcome, session.rows) == ("ok", 1)


def test_identical_tables_move_nothing(peer: Peer):
    Profile.objects.create(user=make_user("kim"), username="kim")
    remote = SnapshotPeer("profiles", origin=peer.name)

    result = reconcile_peer(peer=peer, entities=["profiles"], client=remote)  # type: ignore[arg-type]

    assert (result.buckets_differing, result.rows_repaired, remote.exported) == (0, 0, [])


def test_an_unreachable_peer_ends_the_round_with_an_error_session(peer: Peer):
    class Down:
        def buckets(self, **kwargs: Any) -> PeerResponse:
            raise PeerUnavailable("unreachable", "seoul: ConnectError")

        def close(self) -> None:
            pass

    result = reconcile_peer(peer=peer, entities=["profiles"], client=Down())  # type: ignore[arg-type]

    assert result.error == "seoul: ConnectError"
    assert SyncSession.objects.get(kind="reconcile").outcome == "error"


def test_the_task_runs_a_round_with_every_enabled_peer(peer: Peer):
    Peer.objects.filter(pk=peer.pk).update(url="http://127.0.0.1:9")  # nothing listens there
    Peer.objects.create(
        name="nyc", url="http://127.0.0.1:9", key_id="k-nyc", secret_encrypted="x", enabled=False
    )

    repaired = sync_reconcile_task()

    assert repaired == 0
    sessions = list(SyncSession.objects.filter(kind="reconcile").values_list("peer__name", "outcome"))
    assert sessions == [("seoul", "error")]  # the disabled peer is not contacted
