"""The embedded backend: batches run on this machine under a quota that mirrors a ClusterQueue.

Like a cluster, it outlives the task that submitted to it: a detached runner process does the
work and writes the status into the run directory, so a sensor in another task (or process)
and a retried submit find the run by name. A submit that finds the run with the same spec
reattaches; one whose runner died resumes it, and finished batches are not run again.
Every run on one store shares one quota and one queue (``queue.py``), as the Workloads of a
Kueue ClusterQueue do.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hybrid_provider.backends.base import BlockingBackend
from hybrid_provider.backends.local.environment import runner_environment
from hybrid_provider.backends.local.queue import Ledger, LocalQueue
from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    Reason,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.constants import Flavor
from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import BackendError, InputError
from hybrid_provider.placement.telemetry import FlavorTelemetry, TelemetrySnapshot

log = logging.getLogger(__name__)

RUNS_FOLDER = layout.RUNS_FOLDER
SPEC_FILE, STATE_FILE = "spec.json", "state.json"
PID_FILE, STOP_FILE, LOG_FILE = "runner.pid", "stop-requested", "runner.log"
LOCK_FILE, SUBMIT_LOCK = "runner.lock", "submit.lock"


def default_quota() -> dict[str, int]:
    """Slots per flavor: every core for cpu, one for a GPU when Aer can use one, one QPU."""
    from hybrid_provider.core.execute.simulate import gpu_available

    return {"cpu": os.cpu_count() or 1, "gpu": 1 if gpu_available() else 0, "qpu": 1}


class LocalBackend(BlockingBackend):
    """Batches run on this machine by a detached runner per run, admitted by the store's
    shared queue (``queue.LocalQueue``); everything a sensor or a retried submit needs is in
    the run folder, so any process can read the status or stop the run."""

    name = "local"

    def __init__(self, store_uri: str, quota: dict[str, int] | None = None):
        root = store.normalise_uri(store_uri)
        if not root.startswith("file://"):
            raise InputError(
                f"the local backend keeps its runs on this machine's disk; give it a file:// "
                f"store (got {root}), or use the kubernetes backend for object storage"
            )
        self.runs_dir = Path(root.removeprefix("file://")) / RUNS_FOLDER
        self.queue = LocalQueue(self.runs_dir.parent)
        if any(slots < 0 for slots in (quota or {}).values()):
            raise InputError(f"local quota slots must not be negative: {quota}")
        self._quota = quota or {}

    @functools.cached_property
    def quota(self) -> dict[str, int]:
        """Slots per flavor. Resolved on first use: finding a GPU imports Aer, which a sensor
        reading the status on every poke should not pay for."""
        return {**default_quota(), **self._quota}

    def config(self) -> dict[str, object]:
        """JSON-able constructor arguments, so a trigger can rebuild this backend."""
        return {"store_uri": f"file://{self.runs_dir.parent}", "quota": self.quota}

    # --- the seam -------------------------------------------------------------------------
    def submit(self, spec: WorkflowSpec) -> WorkflowStatus:
        """Get or create the run: one submit per name at a time, so of two racing submits
        with different specs one creates the run and the other is refused. A flavor this
        machine has no slots for is refused first: its batches could never be admitted."""
        self._check_quota(spec)
        run_dir = self.runs_dir / spec.name
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / SUBMIT_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._get_or_create(run_dir, spec)

    def _get_or_create(self, run_dir: Path, spec: WorkflowSpec) -> WorkflowStatus:
        spec_file = run_dir / SPEC_FILE
        if spec_file.exists():
            existing = WorkflowSpec.model_validate_json(spec_file.read_text())
            if existing != spec:
                raise BackendError(
                    f"workflow {spec.name} already exists with another spec; stop it and choose "
                    "another name, or resubmit the same job and options"
                )
            state = read_state(run_dir)
            if state.phase.finished:
                self._wait_for_runner_exit(run_dir)  # it writes its final state, then exits
            if state.phase == WorkflowPhase.SUCCEEDED or runner_alive(run_dir):
                return self.status(spec.name)
            if state.phase.finished:  # failed or stopped: a new try runs what did not finish
                write_state(run_dir, retry_status(state))
            return self._launch(run_dir)  # also resumes after a runner died; results are kept
        write_state(run_dir, initial_status(spec, self.quota))
        store.write_bytes_atomic(store.normalise_uri(spec_file), spec.model_dump_json().encode())
        return self._launch(run_dir)

    def status(self, workflow_name: str) -> WorkflowStatus:
        run_dir = self._existing(workflow_name)
        status = read_state(run_dir)
        if not status.phase.finished and not runner_alive(run_dir):
            status.phase = WorkflowPhase.ERROR
            status.message = f"the local runner exited unexpectedly; see {run_dir / LOG_FILE}"
        return status

    def stop(self, workflow_name: str) -> None:
        run_dir = self._existing(workflow_name)
        (run_dir / STOP_FILE).write_text(datetime.now(timezone.utc).isoformat())
        if not runner_alive(run_dir):
            status = read_state(run_dir)
            if not status.phase.finished:
                status.stop()
                write_state(run_dir, status)

    def logs(self, workflow_name: str, tail: int = 200) -> str:
        log_file = self._existing(workflow_name) / LOG_FILE
        if not log_file.exists():
            return ""
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-tail:])

    def ui_url(self, workflow_name: str) -> str | None:
        return None

    def telemetry(self) -> TelemetrySnapshot:
        """The store's queue now: this backend's quota, the slots every run holds, the batches
        waiting (runs whose runner is gone are dropped first, as a runner would)."""
        with self.queue.transaction() as ledger:
            ledger.reap(lambda run: runner_alive(self.runs_dir / run))
            seen = {f: (ledger.in_use(f), len(ledger.waiting(f))) for f in Flavor}
        return TelemetrySnapshot(
            backend=self.name,
            taken_at=datetime.now(timezone.utc),
            max_parallel=os.cpu_count() or 1,  # the runner's worker processes
            flavors={
                flavor: FlavorTelemetry(
                    flavor=flavor,
                    has_queue=True,
                    slots=self.quota.get(flavor, 0),
                    in_use=in_use,
                    pending=waiting,
                    admitted_workloads=in_use,
                    note=None if self.quota.get(flavor, 0) else "no slots in the local quota",
                )
                for flavor, (in_use, waiting) in seen.items()
            },
        )

    # --- helpers --------------------------------------------------------------------------
    def _check_quota(self, spec: WorkflowSpec) -> None:
        """Every flavor the batches ask for has slots, as the kubernetes backend checks that
        every flavor's LocalQueue exists: otherwise the run would wait for quota for ever."""
        for flavor in spec.flavors:
            if self.quota.get(flavor, 0) <= 0:
                slots = ", ".join(f"{name}={count}" for name, count in sorted(self.quota.items()))
                raise InputError(
                    f"flavor {flavor} has no slots in the local backend's quota ({slots}): use "
                    f"flavor cpu, give the hybrid_quantum connection a local_quota with {flavor} "
                    f'slots (e.g. {{"{flavor}": 1}}), or run on the kubernetes backend'
                )

    def _existing(self, workflow_name: str) -> Path:
        run_dir = self.runs_dir / workflow_name
        if not (run_dir / STATE_FILE).exists():
            raise BackendError(
                f"no local workflow named {workflow_name} under {self.runs_dir}; "
                "was it submitted with the same store?"
            )
        return run_dir

    def _launch(self, run_dir: Path) -> WorkflowStatus:
        """Queue the run's unfinished batches and start a runner that holds the run's lock
        for as long as it lives.

        The lock is taken here and its file descriptor handed to the child, so there is no
        moment in which the run looks abandoned; it is released when the runner dies, however.
        All of it happens in one queue transaction: no runner sees the run half-launched.
        """
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        with (
            self.queue.transaction() as ledger,
            open(run_dir / LOCK_FILE, "a") as lock,
            open(run_dir / LOG_FILE, "ab") as log,
        ):
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return self.status(run_dir.name)  # a runner or a liveness probe holds it
            status = self._enqueue(ledger, read_state(run_dir))
            write_state(run_dir, status)
            process = subprocess.Popen(
                [sys.executable, "-m", "hybrid_provider.backends.local.runner", str(run_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=runner_environment(),  # no connection, Airflow or store secrets
                pass_fds=(lock.fileno(),),
                start_new_session=True,  # outlive the Airflow task that started it
            )
        (run_dir / PID_FILE).write_text(str(process.pid))
        return status

    def _enqueue(self, ledger: Ledger, status: WorkflowStatus) -> WorkflowStatus:
        """Give the store's queue this submit's quota, and queue the run's unfinished batches
        (a resumed run keeps the place its first submission gave it)."""
        if ledger.quota and ledger.quota != self.quota:
            log.warning(
                "the local queue of %s changes its quota from %s to %s (this submit's "
                "local_quota); every run on this store admits under it from now on",
                self.runs_dir.parent,
                ledger.quota,
                self.quota,
            )
        ledger.quota = dict(self.quota)
        unfinished = {
            b.index: b.flavor
            for b in status.batches
            if b.phase in (BatchPhase.PENDING, BatchPhase.RUNNING)
        }
        ledger.track(
            status.name, status.started_at or datetime.now(timezone.utc), unfinished, admitted=set()
        )
        show_positions(status, ledger.positions(status.name))
        return status

    def _wait_for_runner_exit(self, run_dir: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while runner_alive(run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)


def runner_alive(run_dir: Path) -> bool:
    """Whether a runner holds the run's lock (a run whose folder is gone has none)."""
    if not run_dir.is_dir():
        return False
    with open(run_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def show_positions(status: WorkflowStatus, positions: dict[int, int]) -> None:
    """Each waiting batch's place in the store's queue, for the sensor to report."""
    for batch in status.batches:
        if batch.phase == BatchPhase.PENDING:
            batch.queue_position = positions.get(batch.index)


def initial_status(spec: WorkflowSpec, quota: dict[str, int]) -> WorkflowStatus:
    """The state of a new run; its queue positions are set when it is queued."""
    now = datetime.now(timezone.utc)
    batches = []
    for task in spec.batches:
        slots = quota.get(task.flavor, 0)
        batches.append(
            BatchStatus(
                index=task.index,
                flavor=task.flavor,
                admission=Admission.PENDING,
                reason=Reason.PENDING if slots else Reason.NO_QUOTA,
                message=None if slots else f"the local queue has no {task.flavor} slots here",
                pending_since=now,
            )
        )
    return WorkflowStatus(
        name=spec.name,
        backend="local",
        phase=WorkflowPhase.PENDING,
        started_at=now,
        updated_at=now,
        batches=batches,
    )


def retry_status(status: WorkflowStatus) -> WorkflowStatus:
    """The status of a failed run about to be tried again: unfinished batches queue anew."""
    now = datetime.now(timezone.utc)
    for batch in status.batches:
        if batch.phase != BatchPhase.SUCCEEDED:
            batch.reset(now)
    status.phase, status.message, status.finished_at = WorkflowPhase.PENDING, None, None
    return status


def read_state(run_dir: Path) -> WorkflowStatus:
    return WorkflowStatus.model_validate_json((run_dir / STATE_FILE).read_text())


def write_state(run_dir: Path, status: WorkflowStatus) -> None:
    status.updated_at = datetime.now(timezone.utc)
    store.write_bytes_atomic(
        store.normalise_uri(run_dir / STATE_FILE), status.model_dump_json(indent=1).encode()
    )
