"""Property tests of the conflict resolvers: the same final row whatever the delivery order,
including equal HLCs on different nodes, duplicates and redeliveries.

Versions come from a simulated history: nodes write (stamping above what they hold, with a small
HLC range so cross-node ties are common) and receive each other's versions through the resolver,
so version vectors and HLCs are consistent as on real nodes.
"""

from __future__ import annotations

import random
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.sync.models.feed import Strategy, SyncConflict
from apps.sync.resolve import (
    ORDER_STATUS_RANK,
    Version,
    conflict_id,
    resolve,
    vv_join,
    vv_relation,
)

NODES = ["nyc", "osaka", "seoul", "Seoul"]  # "Seoul" < "nyc" bytewise: node tie-breaks are bytewise
STATUSES = list(ORDER_STATUS_RANK)
OWNER = "osaka"


def _resolve(strategy: str, local: Version | None, incoming: Version, append_only: bool = False) -> Version:
    return resolve(
        strategy=strategy,
        local=local,
        incoming=incoming,
        append_only=append_only,
        owner=OWNER,
        merge_orders=strategy == Strategy.MERGE,
    ).result


@st.composite
def histories(
    draw: st.DrawFn, strategy: str, *, deletes: bool = True, append_only: bool = False, resurrect: bool = True
) -> list[Version]:
    clocks = dict.fromkeys(NODES, 0)
    state: dict[str, Version | None] = dict.fromkeys(NODES, None)
    versions: list[Version] = []
    for _ in range(draw(st.integers(min_value=1, max_value=10))):
        node = draw(st.sampled_from(NODES))
        if versions and draw(st.booleans()):
            incoming = draw(st.sampled_from(versions))
            state[node] = _resolve(strategy, state[node], incoming, append_only)
            clocks[node] = max(clocks[node], incoming.hlc)
            continue
        base = state[node]
        if base is not None and base.deleted and not resurrect:
            continue  # a row deleted here stays deleted (rows have UUIDs: nothing re-creates them)
        hlc = max(
            clocks[node] + 1, (base.hlc + 1) if base else 0, draw(st.integers(min_value=0, max_value=12))
        )
        clocks[node] = hlc
        vv = dict(base.vv) if base else {}
        vv[node] = vv.get(node, 0) + 1
        if deletes and base is not None and not base.deleted and draw(st.integers(0, 5)) == 0:
            written = Version(hlc=hlc, node=node, vv=vv, version=base.version + 1, deleted=True)
        else:
            data = {
                "status": draw(st.sampled_from(STATUSES)),
                "filled_quantity": str(Decimal(draw(st.integers(0, 5)))),
                "average_price": str(draw(st.integers(1, 9))),
                "fee": "0",
                "price": str(draw(st.integers(1, 3))),
                "last_modified_at": f"t{hlc}",
            }
            if append_only and base is not None and not base.deleted:
                data = dict(base.data)  # append-only rows do not change ...
                if draw(st.integers(0, 3)) == 0:
                    data["price"] = "99"  # ... except by a bug
            written = Version(hlc=hlc, node=node, vv=vv, version=(base.version + 1) if base else 1, data=data)
        state[node] = written
        versions.append(written)
    return versions


def _deliver(
    strategy: str, versions: list[Version], rng: random.Random, append_only: bool = False
) -> Version:
    stream = versions + [rng.choice(versions) for _ in range(len(versions) // 2 + 1)]  # duplicates
    rng.shuffle(stream)
    state: Version | None = None
    for version in stream:
        state = _resolve(strategy, state, version, append_only)
    assert state is not None
    return state


ORDER_INDEPENDENT = [Strategy.LAST_WRITE_WINS, Strategy.PRIMARY_WINS, Strategy.MERGE]


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    strategy=st.sampled_from(ORDER_INDEPENDENT),
    seeds=st.lists(st.integers(), min_size=3, max_size=3),
)
def test_every_delivery_order_gives_the_same_row(data: st.DataObject, strategy: str, seeds: list[int]):
    versions = data.draw(histories(strategy, deletes=strategy != Strategy.MERGE))

    finals = [_deliver(strategy, versions, random.Random(seed)) for seed in seeds]

    assert finals[0] == finals[1] == finals[2]
    joined: dict[str, int] = {}
    for version in versions:
        joined = vv_join(joined, version.vv)
    assert dict(finals[0].vv) == joined  # the result has seen every version


@settings(max_examples=150, deadline=None)
@given(data=st.data(), seeds=st.lists(st.integers(), min_size=3, max_size=3))
def test_merge_with_deletes_is_order_independent_when_nothing_is_resurrected(
    data: st.DataObject, seeds: list[int]
):
    versions = data.draw(histories(Strategy.MERGE, deletes=True, resurrect=False))
    finals = [_deliver(Strategy.MERGE, versions, random.Random(seed)) for seed in seeds]

    assert finals[0] == finals[1] == finals[2]
    if any(v.deleted for v in versions):
        assert finals[0].deleted  # a delete wins over concurrent edits


@settings(max_examples=150, deadline=None)
@given(data=st.data(), seeds=st.lists(st.integers(), min_size=2, max_size=2))
def test_append_only_is_order_independent_and_flags_changed_content(data: st.DataObject, seeds: list[int]):
    versions = data.draw(histories(Strategy.LAST_WRITE_WINS, deletes=False, append_only=True))

    finals = [_deliver(Strategy.LAST_WRITE_WINS, versions, random.Random(s), append_only=True) for s in seeds]

    assert finals[0] == finals[1]
    for x in versions:
        for y in versions:
            if vv_relation(x.vv, y.vv) == "concurrent" and x.content != y.content:
                outcome = resolve(strategy=Strategy.LAST_WRITE_WINS, local=x, incoming=y, append_only=True)
                assert outcome.conflict is not None and outcome.conflict.status == SyncConflict.Status.OPEN


@settings(max_examples=200, deadline=None)
@given(data=st.data(), strategy=st.sampled_from([*ORDER_INDEPENDENT, Strategy.REJECT]))
def test_resolving_is_idempotent(data: st.DataObject, strategy: str):
    versions = data.draw(histories(strategy))
    state = _deliver(strategy, versions, random.Random(0)) if strategy != Strategy.REJECT else versions[-1]

    for version in versions:
        once = _resolve(strategy, state, version)
        assert _resolve(strategy, once, version) == once
    assert _resolve(strategy, state, state) == state


def test_lww_tie_on_equal_hlc_is_broken_by_node_id_bytewise():
    a = Version(hlc=5, node="Seoul", vv={"Seoul": 1}, data={"theme": "dark"})
    b = Version(hlc=5, node="nyc", vv={"nyc": 1}, data={"theme": "light"})

    one = _resolve(Strategy.LAST_WRITE_WINS, a, b)
    other = _resolve(Strategy.LAST_WRITE_WINS, b, a)

    assert one == other
    assert one.data == {"theme": "light"}  # "nyc" > "Seoul" in code-point order


def test_a_causal_successor_just_applies_without_a_conflict():
    first = Version(hlc=1, node="osaka", vv={"osaka": 1}, data={"status": "open"})
    later = Version(hlc=9, node="seoul", vv={"osaka": 1, "seoul": 1}, data={"status": "open", "price": "2"})

    outcome = resolve(strategy=Strategy.PRIMARY_WINS, local=first, incoming=later, owner="osaka")

    assert outcome.result == later
    assert outcome.conflict is None


def test_primary_wins_keeps_the_home_nodes_concurrent_write():
    home = Version(hlc=1, node="osaka", vv={"osaka": 2}, data={"cash": "10"})
    away = Version(hlc=50, node="seoul", vv={"osaka": 1, "seoul": 1}, data={"cash": "99"})

    for local, incoming in ((home, away), (away, home)):
        outcome = resolve(strategy=Strategy.PRIMARY_WINS, local=local, incoming=incoming, owner="osaka")
        assert outcome.result.data == {"cash": "10"}
        assert dict(outcome.result.vv) == {"osaka": 2, "seoul": 1}
        assert outcome.conflict is not None and outcome.conflict.winner == "a"


def test_order_merge_never_reopens_a_filled_order_and_keeps_the_larger_fill():
    filled = Version(
        hlc=3,
        node="osaka",
        vv={"osaka": 2},
        data={
            "status": "filled",
            "filled_quantity": "2.000",
            "average_price": "10",
            "fee": "1",
            "price": "10",
        },
    )
    edited = Version(
        hlc=7,
        node="seoul",
        vv={"osaka": 1, "seoul": 1},
        data={
            "status": "open",
            "filled_quantity": "1.000",
            "average_price": "9",
            "fee": "0.5",
            "price": "11",
        },
    )

    merged = _resolve(Strategy.MERGE, filled, edited)

    assert merged == _resolve(Strategy.MERGE, edited, filled)
    assert merged.data["status"] == "filled"
    assert (merged.data["filled_quantity"], merged.data["average_price"], merged.data["fee"]) == (
        "2.000",
        "10",
        "1",
    )
    assert merged.data["price"] == "11"  # other fields: the later write
    assert (merged.hlc, merged.node) == (7, "seoul")


@settings(max_examples=150, deadline=None)
@given(
    hlcs=st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=4),
    seeds=st.lists(st.integers(), min_size=3, max_size=3),
)
def test_reject_keeps_the_earliest_of_concurrent_writes_on_every_node(hlcs: list[int], seeds: list[int]):
    versions = [
        Version(hlc=h, node=NODES[i], vv={NODES[i]: 1}, data={"v": i}) for i, h in enumerate(hlcs)
    ]  # pairwise concurrent: one write per node, none seen by the others

    finals = [_deliver(Strategy.REJECT, versions, random.Random(seed)) for seed in seeds]

    earliest = min(versions, key=lambda v: (v.hlc, v.node))
    assert finals[0] == finals[1] == finals[2]
    assert finals[0].data == earliest.data
    rejected = resolve(
        strategy=Strategy.REJECT,
        local=earliest,
        incoming=versions[0] if versions[0] != earliest else versions[1],
    )
    assert rejected.rejected is not None and rejected.rejected != earliest


def test_conflict_ids_and_records_do_not_depend_on_which_side_is_local():
    a = Version(hlc=4, node="osaka", vv={"osaka": 1}, data={"x": 1})
    b = Version(hlc=4, node="seoul", vv={"seoul": 1}, data={"x": 2})

    on_osaka = resolve(strategy=Strategy.LAST_WRITE_WINS, local=a, incoming=b).conflict
    on_seoul = resolve(strategy=Strategy.LAST_WRITE_WINS, local=b, incoming=a).conflict

    assert on_osaka == on_seoul
    assert on_osaka is not None
    assert conflict_id("profiles", "r1", on_osaka) == conflict_id("profiles", "r1", on_seoul)
    assert conflict_id("profiles", "r1", on_osaka) != conflict_id("profiles", "r2", on_osaka)
