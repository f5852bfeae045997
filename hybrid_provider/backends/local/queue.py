"""The store's local queue: one ClusterQueue shared by every local run on a store.

Kueue admits every Workload that uses a ClusterQueue against one quota; so does this queue,
for every runner of every run under ``<store>/_runs``. Each unfinished batch is a workload in
one ledger (``<store>/_queue/ledger.json``), read and changed only under an exclusive lock on
``ledger.lock``, so at most ``quota[flavor]`` batches of a flavor are admitted at any moment.

- Order is StrictFIFO by creation time: a run's batches queue in the order the run was first
  submitted (a resumed run keeps its place), then by batch index; a batch is admitted only
  when every batch ahead of it in its flavor's queue has been.
- A runner admits only its own batches, and only while it is at the head of the queue, so
  the admission timestamps it records follow the queue order exactly.
- Workloads of a run whose runner is no longer alive (killed with -9, its workers with it)
  are dropped by the next runner that looks, and their slots are free again.
- The quota is the one the latest submit stated (see ``docs/reliability.md``).
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import BackendError

QUEUE_FOLDER = layout.QUEUE_FOLDER
LEDGER_FILE, LEDGER_LOCK = "ledger.json", "ledger.lock"


class Workload(BaseModel):
    """One batch of one run, as Kueue makes one Workload per pod."""

    model_config = ConfigDict(extra="forbid")

    run: str
    index: int
    flavor: str
    created_at: datetime  # the run's first submission: its place in the queue
    admitted_at: datetime | None = None

    @property
    def order(self) -> tuple[datetime, str, int]:
        return self.created_at, self.run, self.index


class Ledger(BaseModel):
    """The queue's state: its quota (slots per flavor) and every unfinished batch."""

    model_config = ConfigDict(extra="forbid")

    quota: dict[str, int] = {}
    workloads: list[Workload] = []

    def in_use(self, flavor: str) -> int:
        return sum(1 for w in self.workloads if w.flavor == flavor and w.admitted_at)

    def waiting(self, flavor: str) -> list[Workload]:
        """The flavor's queue, head first."""
        queued = [w for w in self.workloads if w.flavor == flavor and not w.admitted_at]
        return sorted(queued, key=lambda w: w.order)

    def track(
        self, run: str, created_at: datetime, queued: Mapping[int, str], admitted: set[int]
    ) -> None:
        """Make the run's workloads what its runner says: ``queued`` (index to flavor) wait,
        ``admitted`` keep their slots, every other batch of the run leaves the queue."""
        kept = {w.index: w for w in self.workloads if w.run == run and w.index in admitted}
        others = [w for w in self.workloads if w.run != run]
        waiting = [
            Workload(run=run, index=index, flavor=flavor, created_at=created_at)
            for index, flavor in queued.items()
            if index not in kept
        ]
        # in queue order, so that a turn that changes nothing leaves the file as it was
        self.workloads = sorted([*others, *kept.values(), *waiting], key=lambda w: w.order)

    def reap(self, alive: Callable[[str], bool]) -> list[str]:
        """Drop the workloads of runs whose runner is gone; returns those runs."""
        dead = sorted({w.run for w in self.workloads if not alive(w.run)})
        self.workloads = [w for w in self.workloads if w.run not in dead]
        return dead

    def admit(self, run: str, room: int, now: datetime) -> list[Workload]:
        """Admit the run's batches at the head of each flavor's queue while slots are free.

        ``room`` caps how many the run can start now (its free workers)."""
        admitted: list[Workload] = []
        for flavor in sorted({w.flavor for w in self.workloads}):
            free = self.quota.get(flavor, 0) - self.in_use(flavor)
            for workload in self.waiting(flavor):
                if workload.run != run or free <= 0 or len(admitted) >= room:
                    break
                workload.admitted_at = now
                admitted.append(workload)
                free -= 1
        return admitted

    def positions(self, run: str) -> dict[int, int]:
        """Each waiting batch of the run: how many batches of its flavor are ahead of it,
        across every run on the store (Kueue's positionInClusterQueue)."""
        return {
            w.index: position
            for flavor in {w.flavor for w in self.workloads if w.run == run}
            for position, w in enumerate(self.waiting(flavor))
            if w.run == run
        }


class LocalQueue:
    """The ledger of one store, changed in transactions under its lock."""

    def __init__(self, store_root: Path):
        self.folder = store_root / QUEUE_FOLDER

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """The ledger, locked until the block ends, then written back if it changed.

        Start no process in the block: a forked child would inherit the lock and hold it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LEDGER_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / LEDGER_FILE
            before = path.read_text() if path.exists() else ""
            ledger = _parse(before, path)
            yield ledger
            after = ledger.model_dump_json(indent=1)
            if after != before:
                store.write_bytes_atomic(store.normalise_uri(path), after.encode())


def _parse(text: str, path: Path) -> Ledger:
    if not text:
        return Ledger()
    try:
        return Ledger.model_validate_json(text)
    except ValidationError as exc:
        raise BackendError(
            f"the local queue's ledger {path} is unreadable ({exc.error_count()} errors); "
            "stop the local runs on this store, delete it and submit them again"
        ) from None
