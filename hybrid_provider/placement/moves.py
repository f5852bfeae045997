"""Re-placement while waiting: which waiting batches move, and where. One rule for both backends.

The local runner applies it with its queue ledger locked; the kubernetes backend applies it to a
run's status and Kueue's queues, then withdraws each moved batch's pending pod. Either way a
batch that moves has never been admitted, so it runs once, wherever it ends up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from hybrid_provider.backends.spec import Replacement
from hybrid_provider.backends.status import Admission, BatchPhase, BatchStatus
from hybrid_provider.constants import Flavor


class Move(NamedTuple):
    """One waiting batch going to another flavor's queue."""

    batch: int
    source: Flavor
    target: Flavor
    waited_s: float

    @property
    def message(self) -> str:
        """What the batch's status and the logs say about the move."""
        return (
            f"moved from {self.source.value} to {self.target.value}: not admitted after "
            f"{self.waited_s:.1f} s while {self.target.value} had a free slot"
        )


def due_moves(
    batches: Iterable[BatchStatus],
    rule: Replacement,
    free: Mapping[Flavor, int],
    busy: set[Flavor],
    now: datetime,
) -> list[Move]:
    """The moves to make now, lowest batch index first.

    A batch moves when it has waited ``rule.after_s`` for quota and another of the rule's
    flavors has a free slot (``free``: slots neither in use nor promised to workloads queued
    ahead; each move takes one). A batch waiting behind this run's own running batches of its
    flavor (``busy``) stays: that is throughput, not a queue held by others.
    """
    room = {flavor: free.get(flavor, 0) for flavor in rule.flavors}
    moves = []
    for batch in sorted(batches, key=lambda b: b.index):
        if batch.phase != BatchPhase.PENDING or batch.admission != Admission.PENDING:
            continue
        waited = (now - batch.pending_since).total_seconds() if batch.pending_since else 0.0
        target = next((f for f in rule.flavors if f != batch.flavor and room[f] > 0), None)
        if waited < rule.after_s or target is None or batch.flavor in busy:
            continue
        room[target] -= 1
        moves.append(Move(batch.index, batch.flavor, target, waited))
    return moves
