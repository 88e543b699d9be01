"""Monitoring endpoints: shapes, staff-only access, conflict resolution, force."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from apps.sync.feed import feed_sequence
from apps.sync.models import NodeMetric, Peer, PeerAck, SyncConflict, SyncSession
from apps.sync.transport import force_key, worker_state_key
from apps.sync.worker import LinkStats, metrics_collect
from apps.trading.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

MONITORING = ["health", "metrics", "queue", "conflicts", "mesh-status", "stats"]


def publish_worker_state(**links: LinkStats) -> None:
    """What a running sync worker publishes (SyncWorker.state), built from real LinkStats."""
    state = {"node": "local", "pid": 1, "startedAt": time.time(), "updatedAt": time.time(), "links": {}}
    for stats in links.values():
        snapshot = stats.snapshot()
        snapshot |= {"breaker": "closed", "alive": True}
        state["links"][f"{stats.peer}/{stats.lane}"] = snapshot
    cache.set(worker_state_key(), state, timeout=60)


def make_conflict(*, profile: Profile, status: str = "open", entity: str = "profiles") -> SyncConflict:
    return SyncConflict.objects.create(
        id=uuid.uuid4(),
        entity=entity,
        row_id=profile.pk,
        strategy="LAST_WRITE_WINS",
        winner="b",
        status=status,
        a_node="seoul",
        a_hlc=(1_700_000_000_000 << 16),
        a_data={"theme": "dark"},
        b_node="local",
        b_hlc=(1_700_000_000_001 << 16),
        b_data={"theme": "light"},
        result_data={"theme": "light"},
        created_at=timezone.now(),
    )


@pytest.mark.parametrize("name", [*MONITORING, "force"])
def test_monitoring_needs_a_staff_user(name: str, api_client: APIClient, auth_client: APIClient):
    method = "post" if name == "force" else "get"

    anonymous = getattr(api_client, method)(f"/api/sync/{name}")
    regular = getattr(auth_client, method)(f"/api/sync/{name}")

    assert anonymous.status_code == 401
    assert regular.status_code == 403
    assert regular.json()["error"]["code"] == "permission_denied"


def test_health_is_ok_without_peers(staff_client: APIClient):
    body = staff_client.get("/api/sync/health").json()

    assert body == {"status": "ok", "node": "local", "peers": 0, "reasons": []}


def test_health_is_degraded_when_no_worker_runs(staff_client: APIClient, peer: Peer):
    body = staff_client.get("/api/sync/health").json()

    assert body["status"] == "degraded"
    assert body["reasons"] == ["worker_not_running"]


def test_health_names_a_quarantined_and_a_stale_lane(staff_client: APIClient, peer: Peer, settings):
    settings.HAUNT_SYNC_STALE_AFTER_S = 10
    drifting = LinkStats(peer=peer.name, lane=0, quarantined=True, quarantine_reason="hlc too far ahead")
    behind = LinkStats(peer=peer.name, lane=3, behind_since=time.time() - 30)
    publish_worker_state(a=drifting, b=behind)

    body = staff_client.get("/api/sync/health").json()

    assert body["status"] == "degraded"
    assert f"clock_drift_quarantine:{peer.name}/0" in body["reasons"]
    assert f"stale:{peer.name}/3" in body["reasons"]


def test_mesh_status_has_nodes_and_an_edge_per_peer_with_lane_details(
    staff_client: APIClient, peer: Peer, settings
):
    settings.HAUNT_SYNC_STALE_AFTER_S = 10
    fresh = LinkStats(peer=peer.name, lane=0, cursor=40, head=40, latency_ms=1.5, clock_offset_ms=-12.0)
    fresh.window.append((time.time(), 200))
    publish_worker_state(a=fresh, b=LinkStats(peer=peer.name, lane=3, head=90, behind_since=time.time() - 25))
    PeerAck.objects.create(peer=peer, lane=0, seq=17)

    body = staff_client.get("/api/sync/mesh-status").json()

    assert [node["id"] for node in body["nodes"]] == ["local", peer.name]
    assert body["worker"]["running"] is True
    assert body["stale"] is True
    (edge,) = body["edges"]
    assert (edge["from"], edge["to"]) == (peer.name, "local")
    assert edge["latencyMs"] == 1.5 and edge["clockOffsetMs"] == -12.0
    assert edge["peerAcked"] == {"0": 17}
    assert edge["healthy"] is False and f"stale:{peer.name}/3" in edge["reasons"]
    lanes = {lane["lane"]: lane for lane in edge["lanes"]}
    assert lanes[0]["stale"] is False and lanes[0]["rowsPerSecond"] == 20.0  # 200 rows over the 10 s window
    assert lanes[3]["stale"] is True and lanes[3]["lagSeconds"] >= 25
    assert "overall" in edge["backlog"]


def test_metrics_collect_samples_every_link_and_the_api_returns_them(staff_client: APIClient, peer: Peer):
    stats = LinkStats(peer=peer.name, lane=0, cursor=5, head=9, clock_offset_ms=4.0)
    stats.batch_ms.extend([1.0] * 99 + [50.0])
    publish_worker_state(a=stats)

    samples = metrics_collect()
    body = staff_client.get(f"/api/sync/metrics?peer={peer.name}&minutes=5").json()

    assert samples == NodeMetric.objects.count() > 0
    lane0 = next(m for m in body["latest"] if m["lane"] == 0)
    assert lane0["peer"] == peer.name and lane0["head"] == 9
    assert lane0["batchP99Ms"] == 50.0  # the 99th of 100 samples, sorted
    assert lane0["clockOffsetMs"] == 4.0 and lane0["breaker"] == "closed"
    assert len(body["history"]) == samples
    assert {link["lane"] for link in body["links"]} >= {0}


def test_queue_counts_feed_rows_not_yet_acknowledged_by_every_peer(staff_client: APIClient, peer: Peer):
    profile = Profile.objects.create(user=make_user("carol"), username="carol")
    feed_sequence()  # what a peer's feed read does first: the entry gets the seq peers will ack

    before = staff_client.get("/api/sync/queue").json()
    lane = next(item["lane"] for item in before["items"] if item["entity_id"] == str(profile.pk))
    head = next(row["head"] for row in before["lanes"] if row["lane"] == lane)
    PeerAck.objects.create(peer=peer, lane=lane, seq=head)
    after = staff_client.get(f"/api/sync/queue?lane={lane}").json()

    assert before["depth"] >= 1
    lane_row = next(row for row in before["lanes"] if row["lane"] == lane)
    assert lane_row["depth"] >= 1 and lane_row["oldestAgeSeconds"] is not None
    assert after["lanes"] == [
        {"lane": lane, "depth": 0, "head": None, "ackedByAll": head, "oldestAgeSeconds": None}
    ]


def test_conflicts_are_listed_newest_first_with_filters(staff_client: APIClient):
    profile = Profile.objects.create(user=make_user("dave"), username="dave")
    make_conflict(profile=profile, status="auto")
    open_one = make_conflict(profile=profile, status="open")

    everything = staff_client.get("/api/sync/conflicts").json()
    only_open = staff_client.get("/api/sync/conflicts?status=open&entity=profiles").json()
    none = staff_client.get("/api/sync/conflicts?strategy=MERGE").json()

    assert everything["count"] == 2
    assert [c["id"] for c in only_open["results"]] == [str(open_one.pk)]
    assert only_open["results"][0]["a_data"] == {"theme": "dark"}
    assert none["count"] == 0


def test_resolving_a_conflict_keeps_the_chosen_version(staff_client: APIClient, staff):
    profile = Profile.objects.create(user=make_user("erin"), username="erin", theme="light")
    conflict = make_conflict(profile=profile)

    response = staff_client.post(f"/api/sync/conflicts/{conflict.pk}/resolve", {"choice": "remote"})

    assert response.status_code == 200
    assert response.json()["status"] == "resolved" and response.json()["resolution"] == "remote"
    conflict.refresh_from_db()
    assert conflict.status == "resolved" and staff.username in conflict.resolved_by
    assert Profile.objects.get(pk=profile.pk).theme == "dark"  # the version that was not in force


def test_resolve_validates_its_input(staff_client: APIClient):
    profile = Profile.objects.create(user=make_user("frank"), username="frank")
    conflict = make_conflict(profile=profile)

    merged_without_values = staff_client.post(
        f"/api/sync/conflicts/{conflict.pk}/resolve", {"choice": "merged"}
    )
    bad_choice = staff_client.post(f"/api/sync/conflicts/{conflict.pk}/resolve", {"choice": "both"})
    missing = staff_client.post(f"/api/sync/conflicts/{uuid.uuid4()}/resolve", {"choice": "local"})

    assert (
        merged_without_values.status_code == 400
        and "merged" in merged_without_values.json()["error"]["detail"]
    )
    assert bad_choice.status_code == 400
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_resolving_twice_is_refused(staff_client: APIClient):
    profile = Profile.objects.create(user=make_user("gina"), username="gina", theme="light")
    conflict = make_conflict(profile=profile)
    staff_client.post(f"/api/sync/conflicts/{conflict.pk}/resolve", {"choice": "local"})

    again = staff_client.post(f"/api/sync/conflicts/{conflict.pk}/resolve", {"choice": "remote"})

    assert again.status_code == 409


def test_stats_count_rows_and_conflicts_per_entity_and_strategy(staff_client: APIClient):
    profile = Profile.objects.create(user=make_user("hank"), username="hank")
    make_conflict(profile=profile, status="auto")

    body = staff_client.get("/api/sync/stats").json()

    entities = {row["entity"]: row for row in body["entities"]}
    assert entities["profiles"]["rows"] == 1
    assert entities["profiles"]["conflicts"] == 1
    assert entities["profiles"]["feedRows"] >= 1
    assert body["conflictsByStrategy"] == {"LAST_WRITE_WINS": {"auto": 1}}
    assert len(entities) >= 13


def test_force_bumps_the_flag_the_worker_watches(staff_client: APIClient):
    first = staff_client.post("/api/sync/force", {})
    second = staff_client.post("/api/sync/force", {"reconcile": True})

    assert first.status_code == second.status_code == 202
    assert second.json() == {"forced": first.json()["forced"] + 1, "reconcileQueued": True}
    assert cache.get(force_key()) == second.json()["forced"]


def test_cleanup_purges_old_history(peer: Peer):
    from apps.sync.worker import sync_cleanup

    old = timezone.now() - timedelta(days=400)
    SyncSession.objects.create(peer=peer, lane=0, started_at=old, finished_at=old, outcome="ok")
    SyncSession.objects.create(peer=peer, lane=0, outcome="running")
    NodeMetric.objects.create(peer=peer, lane=0, sampled_at=old)

    counts = sync_cleanup()

    assert counts["sessions"] == 1 and counts["metrics"] == 1
    assert SyncSession.objects.count() == 1


def test_cleanup_drops_settled_conflicts_past_retention_without_feeding_deletes():
    from apps.sync.models import SyncFeed
    from apps.sync.worker import sync_cleanup

    profile = Profile.objects.create(user=make_user("old"), username="old")
    settled, still_open = make_conflict(profile=profile, status="auto"), make_conflict(profile=profile)
    SyncConflict.objects.filter(pk__in=[settled.pk, still_open.pk]).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    deletes_before = SyncFeed.objects.filter(op="delete").count()

    counts = sync_cleanup()

    assert counts["queue"] >= 1
    assert list(SyncConflict.objects.values_list("pk", flat=True)) == [still_open.pk]
    assert SyncFeed.objects.filter(op="delete").count() == deletes_before
