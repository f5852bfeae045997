"""What earlier runs teach: per flavor, seconds per subexperiment, queue waits, failures.

When a wait ends, :func:`record_run` writes one small file per run under
``<store>/_placement/history/`` (its batches' flavor, size, time in queue and at work, attempts
and preemptions; the job's widest subcircuit and mode). :func:`load_history` reads only that
folder's newest files: an index across runs, never a scan of every job in the store. One file
per run, named by when it finished, so concurrent runs never write the same object (safe on
object storage, where appending is not).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from hybrid_provider.backends.status import BatchPhase, WorkflowStatus
from hybrid_provider.constants import Flavor
from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import HybridQuantumError
from hybrid_provider.core.manifest import JobManifest

log = logging.getLogger(__name__)

HISTORY_FOLDER = layout.PLACEMENT_HISTORY_FOLDER
#: Runs read per decision: recent enough to follow a changing cluster, enough to average.
HISTORY_RUNS = 50
#: A run counts half as much once this many newer runs are in the index: a flavor's past
#: failures and speeds fade as the cluster changes, instead of counting for ever.
HALF_LIFE_RUNS = 10


class BatchSample(BaseModel):
    """One batch of one finished run, as placement learns from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flavor: Flavor
    subexperiments: int
    queue_s: float | None
    run_s: float | None
    attempts: int
    preemptions: int
    succeeded: bool


class RunRecord(BaseModel):
    """One finished run in the history index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str
    backend: str
    finished_at: datetime
    mode: str
    width: int
    batches: list[BatchSample]


class Estimate(NamedTuple):
    """A number placement uses, and where it came from (for the reasons it gives)."""

    value: float
    source: str


class History:
    """Estimates from finished runs; every estimate says how many batches it rests on."""

    def __init__(self, runs: Iterable[RunRecord] = ()):
        self.runs = list(runs)

    @property
    def empty(self) -> bool:
        return not self.runs

    def _weighted(
        self, flavor: Flavor, mode: str | None = None
    ) -> list[tuple[int, BatchSample, float]]:
        """The flavor's batches with their run's width and weight (``HALF_LIFE_RUNS``; the
        runs are oldest first, so the newest weighs 1)."""
        newest = len(self.runs) - 1
        return [
            (run.width, b, 0.5 ** ((newest - age) / HALF_LIFE_RUNS))
            for age, run in enumerate(self.runs)
            if mode is None or run.mode == mode
            for b in run.batches
            if b.flavor == flavor
        ]

    def seconds_per_subexperiment(self, flavor: Flavor, mode: str, width: int) -> Estimate | None:
        """Run time over subexperiments of succeeded batches of this mode, at the nearest width
        seen (the same width when there is one), newer runs weighing more; None when the flavor
        never ran this mode."""
        done = [
            (w, b, weight)
            for w, b, weight in self._weighted(flavor, mode)
            if b.succeeded and b.run_s is not None and b.subexperiments > 0
        ]
        if not done:
            return None
        nearest = min({w for w, _, _ in done}, key=lambda w: (abs(w - width), -w))
        chosen = [(b, weight) for w, b, weight in done if w == nearest]
        value = sum((b.run_s or 0.0) * weight for b, weight in chosen) / sum(
            b.subexperiments * weight for b, weight in chosen
        )
        where = "" if nearest == width else f", nearest width {nearest}"
        return Estimate(value, f"history: {len(chosen)} {mode} batch(es){where}")

    def queue_seconds(self, flavor: Flavor) -> Estimate | None:
        """Median time a batch of the flavor waited for quota."""
        waits = [b.queue_s for _, b, _ in self._weighted(flavor) if b.queue_s is not None]
        if not waits:
            return None
        return Estimate(statistics.median(waits), f"history: {len(waits)} batch(es)")

    def rework_rate(self, flavor: Flavor) -> Estimate | None:
        """Share of attempts lost to failures and preemptions (0: every attempt counted)."""
        samples = [(b, weight) for _, b, weight in self._weighted(flavor)]
        attempts = sum(max(b.attempts, 1) for b, _ in samples)
        if not attempts:
            return None
        weighed = sum(max(b.attempts, 1) * weight for b, weight in samples)
        lost = sum(
            (max(b.attempts - 1, b.preemptions) + (not b.succeeded)) * weight
            for b, weight in samples
        )
        return Estimate(min(lost / weighed, 0.9), f"history: {attempts} attempt(s)")


def run_record(
    status: WorkflowStatus, manifest: JobManifest, mode: str, now: datetime | None = None
) -> RunRecord:
    """The history entry of a run: its batches as the last status shows them."""
    sizes = {batch.index: batch.count for batch in manifest.batches}
    return RunRecord(
        workflow=status.name,
        backend=status.backend,
        finished_at=status.finished_at or now or datetime.now(timezone.utc),
        mode=mode,
        width=max(manifest.plan.subcircuit_widths.values(), default=0),
        batches=[
            BatchSample(
                flavor=b.flavor,
                subexperiments=sizes.get(b.index, 0),
                queue_s=(b.started_at - b.pending_since).total_seconds()
                if b.started_at and b.pending_since
                else None,
                run_s=b.duration_s,
                attempts=b.attempts,
                preemptions=len(b.preemptions),
                succeeded=b.phase == BatchPhase.SUCCEEDED,
            )
            for b in status.batches
            if b.reason != "ResultStored"  # reused results say nothing about the flavor
        ],
    )


def record_run(store_uri: str, record: RunRecord) -> str:
    """Add a finished run to the store's history index; returns the entry's URI. Writing the
    same run again replaces its entry (a retried wait), never adds a second."""
    stamp = record.finished_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"{record.workflow}.json"
    uri = store.join(store.normalise_uri(store_uri), HISTORY_FOLDER, f"{stamp}-{name}")
    for old in _entries(store_uri):
        if old != uri and old.rsplit("/", 1)[-1].partition("-")[2] == name:
            fs, path = store.filesystem(old)
            fs.rm_file(path)
    store.write_json_atomic(uri, record.model_dump(mode="json"))
    return uri


def _entries(store_uri: str) -> list[str]:
    """The index's entries, oldest first (their names start with the finishing time)."""
    folder = store.join(store.normalise_uri(store_uri), HISTORY_FOLDER)
    fs, path = store.filesystem(folder)
    try:
        names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []
    return [store.join(folder, name) for name in names if name.endswith(".json")]


def load_history(store_uri: str, limit: int = HISTORY_RUNS) -> History:
    """The newest ``limit`` runs of the store's index; an unreadable entry is skipped (and
    logged), never a reason to refuse a placement."""
    runs = []
    for uri in _entries(store_uri)[-limit:]:
        try:
            runs.append(RunRecord.model_validate(store.read_json(uri, what="placement history")))
        except (HybridQuantumError, ValidationError) as exc:
            log.warning("Skipping placement history entry %s: %s", uri, exc)
    return History(runs)
