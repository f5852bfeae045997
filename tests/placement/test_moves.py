"""The re-placement rule both backends apply: who moves, where, and who stays."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hybrid_provider.backends.spec import Replacement
from hybrid_provider.backends.status import Admission, BatchPhase, BatchStatus
from hybrid_provider.placement.moves import due_moves

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
RULE = Replacement(flavors=["cpu", "gpu", "qpu"], after_s=60)


def batch(index, flavor="cpu", waited=90.0, **state) -> BatchStatus:
    return BatchStatus(index=index, flavor=flavor, pending_since=NOW - timedelta(seconds=waited),
                       **state)  # fmt: skip


def test_waiting_batches_take_the_free_slots_in_the_rules_order_lowest_index_first():
    moves = due_moves([batch(2), batch(0), batch(1)], RULE, {"gpu": 1, "qpu": 1}, set(), NOW)
    assert [(m.batch, m.source, m.target) for m in moves] == [(0, "cpu", "gpu"), (1, "cpu", "qpu")]
    assert moves[0].message == (
        "moved from cpu to gpu: not admitted after 90.0 s while gpu had a free slot"
    )


def test_who_stays():
    free = {"gpu": 4}
    assert due_moves([batch(0, waited=59)], RULE, free, set(), NOW) == [], "not waited enough"
    assert due_moves([batch(0)], RULE, {"gpu": 0, "qpu": 0}, set(), NOW) == [], "no free slot"
    assert due_moves([batch(0)], RULE, free, {"cpu"}, NOW) == [], "behind its own running batch"
    running = batch(0, phase=BatchPhase.RUNNING, admission=Admission.ADMITTED)
    evicted = batch(1, admission=Admission.EVICTED)
    assert due_moves([running, evicted], RULE, free, set(), NOW) == [], "only pending ones move"
    outside = Replacement(flavors=["cpu", "qpu"], after_s=60)
    assert due_moves([batch(0)], outside, free, set(), NOW) == [], "only to the rule's flavors"
