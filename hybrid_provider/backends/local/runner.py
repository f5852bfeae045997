"""The detached process behind the local backend: admits batches by quota, runs them in a pool.

Admission mirrors Kueue: a batch waits (with its queue position) until its flavor has a free
slot, then runs; a batch whose result is already stored finishes at once. Unexpected worker
errors are retried once (like Argo's retryStrategy for transient failures); bad input is not.
Run as ``python -m hybrid_provider.backends.local.runner RUN_DIR``.
"""

from __future__ import annotations

import json
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
    QUOTA_FILE,
    SPEC_FILE,
    STOP_FILE,
    read_state,
    write_state,
)
from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.core.errors import HybridQuantumError
from hybrid_provider.core.provenance import EXECUTOR_ENVIRONMENT, THREADS_VARIABLE

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
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.spec = WorkflowSpec.model_validate_json((run_dir / SPEC_FILE).read_text())
        self.quota: dict[str, int] = json.loads((run_dir / QUOTA_FILE).read_text())
        self.status: WorkflowStatus = read_state(run_dir)
        self.running: dict[Future, BatchStatus] = {}
        workers = max(
            1, min(sum(self.quota.get(f, 0) for f in self.spec.flavors), os.cpu_count() or 1)
        )
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=_die_with_parent
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
                if not self.running:
                    time.sleep(POLL_SECONDS)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self._conclude()

    def _resume(self) -> None:
        """Batches left running by a runner that died are queued again."""
        for batch in self.status.batches:
            if batch.phase == BatchPhase.RUNNING:
                batch.phase, batch.admission = BatchPhase.PENDING, Admission.PENDING
                batch.reason, batch.pending_since = "Requeued", _now()
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

    def _admit(self) -> None:
        if self.status.failed_batches:
            return  # like Argo's fail-fast: admit nothing new once a batch has failed
        in_use: dict[str, int] = {}
        for batch in self.running.values():
            in_use[batch.flavor] = in_use.get(batch.flavor, 0) + 1
        for batch in self.status.batches:
            if batch.phase != BatchPhase.PENDING:
                continue
            if in_use.get(batch.flavor, 0) >= self.quota.get(batch.flavor, 0):
                continue
            in_use[batch.flavor] = in_use.get(batch.flavor, 0) + 1
            self._start(batch)
        self._renumber_queue()
        self._save()

    def _start(self, batch: BatchStatus) -> None:
        batch.phase, batch.admission, batch.queue_position = (
            BatchPhase.RUNNING,
            Admission.ADMITTED,
            None,
        )
        batch.reason, batch.message = "Admitted", None
        batch.started_at, batch.attempts = _now(), batch.attempts + 1
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
            batch.finished_at = _now()
            try:
                duration, skipped, device = future.result()
            except BrokenProcessPool as exc:
                self._fail(batch, f"a worker process died: {exc}", retry=False)
            except HybridQuantumError as exc:
                self._fail(batch, str(exc), retry=False)
            except Exception as exc:  # unexpected: retried once, as Argo's retryStrategy would
                self._fail(batch, f"{type(exc).__name__}: {exc}", retry=True)
            else:
                batch.phase, batch.admission = BatchPhase.SUCCEEDED, Admission.FINISHED
                batch.duration_s = round(duration, 3)
                batch.reason = "ResultStored" if skipped else "Completed"
                how = "result already stored" if skipped else f"{duration:.1f} s on {device}"
                log.info(
                    "batch %d done (%s), %s batches done", batch.index, how, self.status.progress
                )
        if finished:
            self._save()

    def _fail(self, batch: BatchStatus, message: str, retry: bool) -> None:
        if retry and batch.attempts < MAX_ATTEMPTS:
            log.warning("batch %d failed (%s); retrying", batch.index, message)
            batch.phase, batch.admission, batch.reason = (
                BatchPhase.PENDING,
                Admission.PENDING,
                "Retrying",
            )
            batch.pending_since, batch.message = _now(), message
            return
        log.error("batch %d failed: %s", batch.index, message)
        batch.phase, batch.admission, batch.reason, batch.message = (
            BatchPhase.FAILED,
            Admission.FINISHED,
            "Error",
            message,
        )

    def _stop(self) -> None:
        log.info("stop requested: ending %d running batch(es)", len(self.running))
        for process in list(self.pool._processes.values()):  # no public API to kill workers
            process.terminate()
        for batch in self.running.values():
            batch.phase, batch.admission, batch.reason = (
                BatchPhase.FAILED,
                Admission.FINISHED,
                "Stopped",
            )
            batch.finished_at = _now()
        self.running.clear()
        self.status.phase, self.status.message = WorkflowPhase.FAILED, "Stopped"

    def _renumber_queue(self) -> None:
        position: dict[str, int] = {}
        for batch in self.status.batches:
            if batch.phase == BatchPhase.PENDING:
                batch.queue_position = position.get(batch.flavor, 0)
                position[batch.flavor] = batch.queue_position + 1

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
