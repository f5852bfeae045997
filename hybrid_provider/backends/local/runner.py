"""The detached process behind the local backend: admits batches by quota, runs them in a pool.

Admission mirrors Kueue: a batch waits (with its position in the store's queue, shared with
every run on the store) until its flavor has a free slot and every batch ahead of it has been
admitted, then runs; a batch whose result is already stored finishes at once. Unexpected
worker errors are retried once (like Argo's retryStrategy for transient failures); bad input
is not.
Run as ``python -m hybrid_provider.backends.local.runner RUN_DIR``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path

from hybrid_provider.backends.local.backend import (
    SPEC_FILE,
    STOP_FILE,
    read_state,
    runner_alive,
    show_positions,
    write_state,
)
from hybrid_provider.backends.local.queue import Ledger, LocalQueue, Workload
from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import (
    BatchPhase,
    BatchStatus,
    Reason,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.constants import Flavor
from hybrid_provider.core.execute.runtime_options import is_runtime_sampler
from hybrid_provider.core.failures import Disposition, describe, disposition
from hybrid_provider.core.provenance import EXECUTOR_ENVIRONMENT, THREADS_VARIABLE
from hybrid_provider.placement.moves import due_moves

log = logging.getLogger("hybrid_provider.local.runner")
MAX_ATTEMPTS = 2
POLL_SECONDS = 0.2


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _die_with_parent() -> None:
    """Workers end with the runner, even when it is killed, instead of waiting forever."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _run_batch_in_worker(manifest_uri: str, index: int, options: dict, environment: dict):
    """Run one batch; ``environment`` (Aer threads, and the run and flavor that the batch
    record's provenance names) is set first, as a pod gets it from its spec."""
    os.environ.update(environment)
    from hybrid_provider.core.execute.batch import ExecutionOptions, run_batch

    report = run_batch(manifest_uri, index, ExecutionOptions(**options))
    return report.duration_s, report.skipped, report.device


class Runner:
    """The detached process of one local run: takes its turns at the store's queue, runs the
    admitted batches in a process pool and writes the status after every change, until every
    batch is done, a batch fails for good, or a stop is requested."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.spec = WorkflowSpec.model_validate_json((run_dir / SPEC_FILE).read_text())
        self.queue = LocalQueue(run_dir.parent.parent)
        with self.queue.transaction() as ledger:
            self.quota: dict[str, int] = dict(ledger.quota)
        self.status: WorkflowStatus = read_state(run_dir)
        self.running: dict[Future, BatchStatus] = {}
        slots = sum(self.quota.get(f, 0) for f in self.spec.reachable_flavors)
        self.workers = max(1, min(slots, os.cpu_count() or 1))
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_die_with_parent,
        )

    def run(self) -> None:
        self._resume()
        log.info("workflow %s: %d batches, quota %s", self.spec.name, self.status.total, self.quota)
        try:
            while not self._finished():
                if (self.run_dir / STOP_FILE).exists():
                    self._stop()
                    break
                self._admit()
                self._collect(
                    wait(list(self.running), timeout=POLL_SECONDS)[0] if self.running else ()
                )
                self._show_provider_waits()
                if not self.running:
                    time.sleep(POLL_SECONDS)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            with self.queue.transaction() as ledger:  # free our slots, leave the queue
                ledger.track(self.spec.name, self.queued_since, {}, admitted=set())
        self._conclude()

    def _resume(self) -> None:
        """Batches left running by a runner that died are queued again."""
        for batch in self.status.batches:
            if batch.phase == BatchPhase.RUNNING:
                batch.queue(Reason.REQUEUED, _now())
        if self.status.phase.finished:
            return
        self.status.phase = WorkflowPhase.RUNNING
        self._save()

    def _finished(self) -> bool:
        if self.running:
            return False
        waiting = [b for b in self.status.batches if b.phase == BatchPhase.PENDING]
        admittable = [b for b in waiting if self.quota.get(b.flavor, 0) > 0]
        return not admittable or bool(self.status.failed_batches)

    @property
    def queued_since(self) -> datetime:
        """The run's place in the store's queue: when it was first submitted."""
        return self.status.started_at or _now()

    def _admit(self) -> None:
        """Start what the store's queue admits now, and show where the rest waits."""
        before = [b.queue_position for b in self.status.batches]
        pending = {b.index: b for b in self.status.batches if b.phase == BatchPhase.PENDING}
        admitted, positions = self._turn_at_queue(pending)
        for workload in admitted:  # outside the transaction: a new worker must not inherit it
            self._start(pending[workload.index], workload.admitted_at or _now())
        show_positions(self.status, positions)
        if admitted or before != [b.queue_position for b in self.status.batches]:
            self._save()

    def _turn_at_queue(
        self, pending: dict[int, BatchStatus]
    ) -> tuple[list[Workload], dict[int, int]]:
        """Free the slots of our finished batches and of runs whose runner is gone, then admit
        ours at the head of the queue; returns them and the places of those still waiting."""
        failing = bool(self.status.failed_batches)  # like Argo's fail-fast: admit nothing new
        with self.queue.transaction() as ledger:
            gone = ledger.reap(
                lambda run: run == self.spec.name or runner_alive(self.run_dir.parent / run)
            )
            moved = [] if failing else self._replace(ledger, pending)
            ledger.track(
                self.spec.name,
                self.queued_since,
                {} if failing else {i: b.flavor for i, b in pending.items()},
                admitted={b.index for b in self.running.values()},
            )
            room = 0 if failing else self.workers - len(self.running)
            admitted = ledger.admit(self.spec.name, room, _now())
            positions, quota = ledger.positions(self.spec.name), dict(ledger.quota)
        if gone:
            log.info("freed the slots of %s: the runner is gone", ", ".join(gone))
        for batch in moved:
            log.info("batch %d %s", batch.index, batch.message)
        if quota != self.quota:
            log.info("the store's local queue now has the quota %s", quota)
            self.quota = quota
        return admitted, positions

    def _replace(self, ledger: Ledger, pending: dict[int, BatchStatus]) -> list[BatchStatus]:
        """Re-placement (``placement.moves``), decided with the ledger locked, so no other run
        takes the slot meanwhile."""
        rule = self.spec.replacement
        if rule is None:
            return []
        busy = {b.flavor for b in self.running.values()} | {
            Flavor(w.flavor) for w in ledger.workloads if w.run == self.spec.name and w.admitted_at
        }  # a batch that just finished holds its slot in the ledger until this turn's track
        free = {
            f: ledger.quota.get(f, 0) - ledger.in_use(f) - len(ledger.waiting(f))
            for f in rule.flavors
        }
        now = _now()
        moves = due_moves(pending.values(), rule, free, busy, now)
        for move in moves:
            pending[move.batch].move(move.target, now, move.message)
        return [pending[move.batch] for move in moves]

    def _start(self, batch: BatchStatus, admitted_at: datetime) -> None:
        batch.admit(admitted_at)
        future = self.pool.submit(
            _run_batch_in_worker,
            self.spec.manifest_uri,
            batch.index,
            self.spec.execution.model_dump(),
            {
                THREADS_VARIABLE: str(self.threads),
                EXECUTOR_ENVIRONMENT["workflow"]: self.spec.name,
                EXECUTOR_ENVIRONMENT["flavor"]: batch.flavor,
            },
        )
        self.running[future] = batch

    def _collect(self, finished) -> None:
        for future in finished:
            batch = self.running.pop(future)
            try:
                duration, skipped, device = future.result()
            except BrokenProcessPool as exc:  # the pool is gone: the run ends here
                self._fail(batch, f"a worker process died: {exc}", retry=False)
            except Exception as exc:  # core.failures decides, as for the operators and pods
                retry = disposition(exc) == Disposition.RETRY
                self._fail(batch, describe(exc) if not retry else f"{type(exc).__name__}: {exc}",
                           retry=retry)  # fmt: skip
            else:
                batch.succeed(_now(), duration, reused=skipped)
                how = "result already stored" if skipped else f"{duration:.1f} s on {device}"
                log.info(
                    "batch %d done (%s), %s batches done", batch.index, how, self.status.progress
                )
        if finished:
            self._save()

    def _show_provider_waits(self) -> None:
        """Running batches whose QPU provider queues their job say so, with the position."""
        if not is_runtime_sampler(self.spec.execution.sampler):
            return
        from hybrid_provider.core.execute.ibm_runtime import provider_wait

        uri = self.spec.manifest_uri
        changed = [b.wait_on_provider(provider_wait(uri, b.index)) for b in self.running.values()]
        if any(changed):
            self._save()

    def _fail(self, batch: BatchStatus, message: str, retry: bool) -> None:
        if retry and batch.attempts < MAX_ATTEMPTS:
            log.warning("batch %d failed (%s); retrying", batch.index, message)
            batch.queue(Reason.RETRYING, _now(), message)
            return
        log.error("batch %d failed: %s", batch.index, message)
        batch.fail(Reason.ERROR, _now(), message)

    def _stop(self) -> None:
        log.info("stop requested: ending %d running batch(es)", len(self.running))
        for process in list(self.pool._processes.values()):  # no public API to kill workers
            process.terminate()
        for batch in self.running.values():
            batch.fail(Reason.STOPPED, _now())
        self.running.clear()
        self.status.stop()

    def _conclude(self) -> None:
        status = self.status
        if status.phase != WorkflowPhase.FAILED:
            failed = status.failed_batches
            if failed:
                status.phase = WorkflowPhase.FAILED
                status.message = "; ".join(f"batch {b.index}: {b.message}" for b in failed)
            elif status.done == status.total:
                status.phase = WorkflowPhase.SUCCEEDED
            else:
                status.phase = WorkflowPhase.FAILED
                stuck = sorted({b.flavor for b in status.batches if b.phase == BatchPhase.PENDING})
                status.message = (
                    f"no local quota for flavor(s) {', '.join(stuck)}: this machine's local queue "
                    f"has no slots for them (quota {self.quota}). Use flavor cpu here, set "
                    "local_quota in the hybrid_quantum connection, or run on the kubernetes backend"
                )
        status.finished_at = _now()
        self._save()
        log.info("workflow %s %s: %s", self.spec.name, status.phase.value, status.message or "")

    def _save(self) -> None:
        write_state(self.run_dir, self.status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("qiskit").setLevel(logging.WARNING)  # transpiler passes log at INFO
    Runner(Path(argv[0])).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
