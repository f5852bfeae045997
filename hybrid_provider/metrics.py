"""Prometheus metrics of the quantum stage, derived from the artifact store on every scrape.

A batch pod runs ``hybrid-quantum run-batch`` once and exits, usually before any scrape, so
counters kept inside it would die with it. Everything worth counting is already in the store
(each batch's sealed result record, each job's manifest, the reconstruction's result, the
wait's timeline of every batch through the queue, and for the local backend each run's status
and the shared queue's ledger), so the exporter
(``hybrid-quantum metrics``) reads the store when Prometheus scrapes: stateless, restart-safe,
and true for pods that are long gone.

Cost per scrape: one recursive listing of the store (one paginated LIST on object storage);
a file is read only when it is new or its size or modification time changed, so a steady
store costs the listing alone. Memory: one small summary per job, batch and run.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from hybrid_provider.backends.local.backend import RUNS_FOLDER, STATE_FILE
from hybrid_provider.backends.local.queue import LEDGER_FILE, QUEUE_FOLDER, Ledger
from hybrid_provider.backends.status import BatchPhase, BatchStatus, Reason, WorkflowStatus
from hybrid_provider.constants import DURATION_BUCKETS, METRICS_PREFIX
from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute.record import read_record
from hybrid_provider.core.manifest import MANIFEST_NAME, load_manifest
from hybrid_provider.core.reconstruct.result import read_result

log = logging.getLogger(__name__)

PREFIX = METRICS_PREFIX
RECONSTRUCTION_FILE = layout.RECONSTRUCTION_RESULT
UNKNOWN = "unknown"
UNREADABLE = f"{PREFIX}_store_unreadable_files"
OVERHEAD_BUCKETS = (1, 10, 100, 1e3, 1e4, 1e5, 1e6)


@dataclass(frozen=True)
class BatchSample:
    """One stored batch result: what it ran, where, and for how long."""

    flavor: str
    device: str
    mode: str
    subexperiments: int
    shots: int
    duration_s: float
    finished_at: float


@dataclass(frozen=True)
class JobSample:
    """One cut job, from its manifest."""

    cut_seconds: float | None
    sampling_overhead: float


@dataclass(frozen=True)
class ReconstructionSample:
    """One published reconstruction: how long it took, and each observable's value and
    standard error (labelled by the job's name, as the cut task named it)."""

    job_name: str
    array_module: str
    seconds: float
    observables: tuple[str, ...]
    values: tuple[float, ...]
    std_errors: tuple[float, ...]


@dataclass(frozen=True)
class Timeline:
    """Every batch of one job as the wait last saw it (any backend): queue wait and attempts."""

    batches: tuple[BatchStatus, ...]


Sample = BatchSample | JobSample | ReconstructionSample | Timeline | WorkflowStatus | Ledger


def _batch(path: str) -> BatchSample:
    job, _, name = path.rpartition("/results/")
    record = read_record(store.join(job, MANIFEST_NAME), int(name[len("batch-") : -len(".json")]))
    options = record.options
    return BatchSample(
        flavor=record.provenance.executor.flavor or UNKNOWN,
        device=record.provenance.device,
        mode=options.mode,
        subexperiments=record.num_subexperiments,
        shots=(options.shots or 0) * record.num_subexperiments,
        duration_s=record.duration_s,
        finished_at=record.finished_at.timestamp(),
    )


def _job(path: str) -> JobSample:
    manifest = load_manifest(path)
    return JobSample(manifest.cut_seconds, manifest.plan.sampling_overhead)


def _reconstruction(path: str) -> ReconstructionSample:
    result = read_result(path)
    job = path[: -len(RECONSTRUCTION_FILE)]
    return ReconstructionSample(
        job_name=load_manifest(job + MANIFEST_NAME).job_name,
        array_module=result.array_module,
        seconds=result.seconds,
        observables=tuple(result.observables),
        values=tuple(result.values),
        std_errors=tuple(result.std_errors),
    )


def _timeline(path: str) -> Timeline:
    payload = store.read_json(path, what="timeline")
    try:
        return Timeline(tuple(BatchStatus.model_validate(b) for b in payload["batches"]))
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"timeline {path} lists no batches ({exc})") from exc


def _run(path: str) -> WorkflowStatus:
    return WorkflowStatus.model_validate_json(store.read_bytes(path, what="run status"))


def _ledger(path: str) -> Ledger:
    return Ledger.model_validate_json(store.read_bytes(path, what="local queue ledger"))


def reader_for(relative: str) -> Callable[[str], Sample] | None:
    """Which reader understands a file of the store (by its path under the root), if any."""
    parts = relative.split("/")
    if parts[0] == RUNS_FOLDER:
        return _run if len(parts) == 3 and parts[2] == STATE_FILE else None
    if parts[0] == QUEUE_FOLDER:
        return _ledger if parts[1:] == [LEDGER_FILE] else None
    if parts[-1] == MANIFEST_NAME:
        return _job
    if relative.endswith("/" + RECONSTRUCTION_FILE):
        return _reconstruction
    if relative.endswith("/" + layout.TIMELINE):
        return _timeline
    if len(parts) >= 3 and parts[-2] == "results" and parts[-1].startswith("batch-"):
        return _batch if parts[-1].endswith(".json") else None
    return None


class StoreCollector(Collector):
    """Metrics of every job and local run in one store, read on each scrape (see module doc)."""

    def __init__(self, store_uri: str):
        self.root = store.normalise_uri(store_uri)
        self._cache: dict[str, tuple[Any, Sample | None]] = {}
        self._lock = threading.Lock()

    def samples(self) -> tuple[list[Sample], int]:
        """The store's samples and how many files could not be read (skipped, logged)."""
        fs, root = store.filesystem(self.root)
        root = root.rstrip("/")
        listing = fs.find(root, detail=True) if fs.exists(root) else {}
        with self._lock:
            fresh: dict[str, tuple[Any, Sample | None]] = {}
            for path, info in listing.items():
                reader = reader_for(path[len(root) + 1 :])
                if reader is None:
                    continue
                stamp = (info.get("size"), _modified(info))
                cached = self._cache.get(path)
                fresh[path] = cached if cached and cached[0] == stamp else (stamp, None)
                if fresh[path][1] is None:
                    fresh[path] = (stamp, self._read(reader, fs.unstrip_protocol(path)))
            self._cache = fresh
        values = [sample for _, sample in fresh.values()]
        return [s for s in values if s is not None], sum(1 for s in values if s is None)

    @staticmethod
    def _read(reader: Callable[[str], Sample], uri: str) -> Sample | None:
        try:
            return reader(uri)
        except (ArtifactError, ValueError, OSError) as exc:
            # A file being written, or from another release: counted, retried next scrape.
            log.warning("metrics: skipping %s: %s", uri, exc)
            return None

    def collect(self) -> Iterator[Metric]:
        samples, unreadable = self.samples()
        yield from families(samples)
        yield GaugeMetricFamily(
            UNREADABLE,
            "Files of the store the exporter could not read at this scrape (see its log)",
            value=unreadable,
        )


def _modified(info: dict[str, Any]) -> Any:
    """A file's modification stamp, whatever the filesystem calls it."""
    for key in ("mtime", "LastModified", "updated", "last_modified", "created", "ETag"):
        if info.get(key) is not None:
            return info[key]
    return None


def families(samples: Iterable[Sample]) -> Iterator[Metric]:
    """Every metric family over the samples (pure: the tests compare it with the records)."""
    samples = list(samples)
    yield from _batch_families([s for s in samples if isinstance(s, BatchSample)])
    yield from _job_families([s for s in samples if isinstance(s, JobSample)])
    yield from _reconstruction_families([s for s in samples if isinstance(s, ReconstructionSample)])
    yield from _timeline_families([s for s in samples if isinstance(s, Timeline)])
    yield from _run_families([s for s in samples if isinstance(s, WorkflowStatus)])
    yield from _queue_families([s for s in samples if isinstance(s, Ledger)])


def _batch_families(batches: list[BatchSample]) -> Iterator[Metric]:
    labels = ["flavor", "device", "mode"]
    done = CounterMetricFamily(
        f"{PREFIX}_batches_completed",
        "Batch results stored (one per batch of a job)",
        labels=labels,
    )
    subexperiments = CounterMetricFamily(
        f"{PREFIX}_subexperiments", "Subexperiments run by the stored batches", labels=labels
    )
    shots = CounterMetricFamily(
        f"{PREFIX}_shots", "Shots taken by the stored batches (shot mode)", labels=labels
    )
    durations: dict[tuple[str, ...], list[float]] = defaultdict(list)
    counts: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    last: dict[str, float] = {}
    for b in batches:
        key = (b.flavor, b.device, b.mode)
        counts[key][0] += 1
        counts[key][1] += b.subexperiments
        counts[key][2] += b.shots
        durations[key].append(b.duration_s)
        last[b.flavor] = max(last.get(b.flavor, 0.0), b.finished_at)
    for labelled, (n, subs, shot_total) in sorted(counts.items()):
        done.add_metric(labelled, n)
        subexperiments.add_metric(labelled, subs)
        shots.add_metric(labelled, shot_total)
    yield from (done, subexperiments, shots)
    yield _histogram(
        "batch_duration_seconds",
        "Run time of each stored batch (its record's duration_s)",
        labels,
        durations,
    )
    finished = GaugeMetricFamily(
        f"{PREFIX}_last_batch_finished_timestamp_seconds",
        "When the newest stored batch of a flavor finished (Unix time)",
        labels=["flavor"],
    )
    for flavor, moment in sorted(last.items()):
        finished.add_metric([flavor], moment)
    yield finished


def _job_families(jobs: list[JobSample]) -> Iterator[Metric]:
    yield CounterMetricFamily(f"{PREFIX}_jobs", "Cut jobs in the store", value=len(jobs))
    timed = [j.cut_seconds for j in jobs if j.cut_seconds is not None]
    yield _histogram("cut_duration_seconds", "Cut stage of each job", [], {(): timed})
    overheads = [j.sampling_overhead for j in jobs]
    yield _histogram(
        "sampling_overhead",
        "Sampling overhead of each job's cuts",
        [],
        {(): overheads},
        OVERHEAD_BUCKETS,
    )


def _reconstruction_families(results: list[ReconstructionSample]) -> Iterator[Metric]:
    by_module: dict[tuple[str, ...], list[float]] = defaultdict(list)
    labels = ["job_name", "observable"]
    values = GaugeMetricFamily(
        f"{PREFIX}_result_value",
        "Reconstructed expectation value of each observable",
        labels=labels,
    )
    errors = GaugeMetricFamily(
        f"{PREFIX}_result_standard_error",
        "Standard error of each reconstructed value (0 in exact mode)",
        labels=labels,
    )
    for r in sorted(results, key=lambda r: r.job_name):
        by_module[(r.array_module,)].append(r.seconds)
        for observable, value, error in zip(r.observables, r.values, r.std_errors, strict=True):
            values.add_metric([r.job_name, observable], value)
            errors.add_metric([r.job_name, observable], error)
    yield _histogram(
        "reconstruction_duration_seconds",
        "Reconstruction of each published job, by array module (numpy or cupy)",
        ["array_module"],
        by_module,
    )
    yield from (values, errors)


def _timeline_families(timelines: list[Timeline]) -> Iterator[Metric]:
    yield from _queue_history(
        "batch",
        "batches of waited-for jobs (any backend)",
        [b for t in timelines for b in t.batches],
    )


def batch_state(phase: BatchPhase, reason: str | None, state: str) -> str:
    """The exported state of a local batch: its summary state, with a finished batch split
    into one that ran (succeeded) and one whose stored result was reused."""
    if phase == BatchPhase.SUCCEEDED:
        return "reused" if reason == Reason.RESULT_STORED else "succeeded"
    return state


def _run_families(runs: list[WorkflowStatus]) -> Iterator[Metric]:
    batches = GaugeMetricFamily(
        f"{PREFIX}_local_batches",
        "Batches of the local backend's runs by state (pending, admitted, running, succeeded, "
        "reused, failed, evicted)",
        labels=["flavor", "state"],
    )
    states: dict[tuple[str, str], int] = defaultdict(int)
    for run in runs:
        for b in run.batches:
            states[(b.flavor.value, batch_state(b.phase, b.reason, b.state))] += 1
    for key, n in sorted(states.items()):
        batches.add_metric(list(key), n)
    yield batches
    yield from _queue_history(
        "local_batch", "local batches (live)", [b for run in runs for b in run.batches]
    )


def _queue_history(name: str, what: str, batches: list[BatchStatus]) -> Iterator[Metric]:
    """Attempts, preemptions and queue wait per flavor: from the local backend's live run
    status (``local_batch_*``), and from the timelines the wait writes for any backend
    (``batch_*``)."""
    attempts = CounterMetricFamily(
        f"{PREFIX}_{name}_attempts",
        f"Attempts of {what} (a resubmit starts a batch's count again)",
        labels=["flavor"],
    )
    preemptions = CounterMetricFamily(
        f"{PREFIX}_{name}_preemptions",
        f"Attempts of {what} taken back (preempted, evicted, a runner gone)",
        labels=["flavor"],
    )
    tries: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    waits: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for b in batches:
        flavor = b.flavor.value
        tries[flavor][0] += b.attempts
        tries[flavor][1] += len(b.preemptions)
        if b.started_at and b.pending_since and b.started_at >= b.pending_since:
            waits[(flavor,)].append((b.started_at - b.pending_since).total_seconds())
    for flavor, (n_attempts, n_preempted) in sorted(tries.items()):
        attempts.add_metric([flavor], n_attempts)
        preemptions.add_metric([flavor], n_preempted)
    yield from (attempts, preemptions)
    yield _histogram(
        f"{name}_queue_wait_seconds",
        f"Wait for quota before the latest admission of each of the {what}",
        ["flavor"],
        waits,
    )


def _queue_families(ledgers: list[Ledger]) -> Iterator[Metric]:
    quota = GaugeMetricFamily(
        f"{PREFIX}_local_queue_quota", "Slots per flavor of the local queue", labels=["flavor"]
    )
    workloads = GaugeMetricFamily(
        f"{PREFIX}_local_queue_workloads",
        "Batches in the local queue: waiting for a slot, or admitted",
        labels=["flavor", "admission"],
    )
    for ledger in ledgers:  # one per store
        for flavor, slots in sorted(ledger.quota.items()):
            quota.add_metric([flavor], slots)
        for flavor in sorted({*ledger.quota, *(w.flavor for w in ledger.workloads)}):
            workloads.add_metric([flavor, "waiting"], len(ledger.waiting(flavor)))
            workloads.add_metric([flavor, "admitted"], ledger.in_use(flavor))
    yield from (quota, workloads)


def _histogram(
    name: str,
    documentation: str,
    labels: list[str],
    observations: dict[tuple[str, ...], list[float]],
    buckets: tuple[float, ...] = DURATION_BUCKETS,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)
    for key, values in sorted(observations.items()):
        cumulative = [
            (_bucket_label(bound), sum(1 for v in values if v <= bound)) for bound in buckets
        ]
        family.add_metric(list(key), [*cumulative, ("+Inf", len(values))], sum(values))
    return family


def _bucket_label(bound: float) -> str:
    return repr(float(bound))


def registry(store_uri: str) -> CollectorRegistry:
    """A registry holding only the store's metrics (no process metrics of the exporter)."""
    collector_registry = CollectorRegistry(auto_describe=False)
    collector_registry.register(StoreCollector(store_uri))
    return collector_registry


def metric_names() -> set[str]:
    """Every series name the exporter exports (the dashboard test checks its queries)."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    families_ = [*families([]), GaugeMetricFamily(UNREADABLE, "")]
    return {f.name + suffix for f in families_ for suffix in suffixes[f.type]}
