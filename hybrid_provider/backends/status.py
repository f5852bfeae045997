"""One status model for both backends, shaped after Argo nodes and Kueue Workloads.

Admission is reported per batch, never inferred from the workflow phase: on a cluster the
workflow is already ``Running`` while its pods wait for quota.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from enum import Enum, StrEnum

from pydantic import BaseModel, ConfigDict

from hybrid_provider.constants import Flavor


class WorkflowPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"

    @property
    def finished(self) -> bool:
        return self in (WorkflowPhase.SUCCEEDED, WorkflowPhase.FAILED, WorkflowPhase.ERROR)


class BatchPhase(str, Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Reason(StrEnum):
    """Why a batch is where it is, as the local backend reports it (on Kubernetes the reason
    is Kueue's or the kubelet's own word, e.g. ``Preempted`` or ``FailedMount``)."""

    PENDING = "Pending"
    NO_QUOTA = "NoQuota"
    ADMITTED = "Admitted"
    COMPLETED = "Completed"
    RESULT_STORED = "ResultStored"
    RETRYING = "Retrying"
    REQUEUED = "Requeued"
    RESUBMITTED = "Resubmitted"
    REPLACED = "Replaced"
    ERROR = "Error"
    STOPPED = "Stopped"
    PROVIDER_QUEUED = "WaitingOnQpuProvider"  # running, its job queued by the QPU provider


class Admission(str, Enum):
    """Kueue's view of a batch's pod: waiting for quota, admitted, evicted, or done."""

    PENDING = "pending"
    ADMITTED = "admitted"
    EVICTED = "evicted"
    FINISHED = "finished"


#: Why a batch cannot start and will not by waiting: the cluster's configuration or the pod's
#: references are wrong (a missing Secret or ConfigMap, LocalQueue or ClusterQueue, an invalid
#: image name, a request larger than any quota). The wait fails with the message that names it
#: once the pod has shown it for ``BLOCKED_AFTER_S`` (a Secret created a moment late is fine).
#: Image pulls are left out: registries fail transiently, and the kubelet retries them.
BLOCKING_REASONS = frozenset(
    {
        "FailedMount",
        "CreateContainerConfigError",
        "InvalidImageName",
        "Misconfigured",
        "ExceedsMaxQuota",
    }
)
BLOCKED_AFTER_S = 30.0


class Preemption(BaseModel):
    """One attempt of a batch taken back by Kueue (its pod deleted to make room)."""

    model_config = ConfigDict(extra="forbid")

    at: datetime
    message: str


class BatchStatus(BaseModel):
    """One batch (an Argo node, one pod, one Kueue Workload) between the queue and its result.

    The local backend moves a batch only through the named transitions below, so a batch is
    never running without admission, nor finished without a reason.
    """

    model_config = ConfigDict(extra="forbid")

    index: int
    flavor: Flavor
    phase: BatchPhase = BatchPhase.PENDING
    admission: Admission = Admission.PENDING
    queue_position: int | None = None
    reason: str | None = None
    message: str | None = None
    pending_since: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    attempts: int = 0
    preemptions: list[Preemption] = []
    #: The flavors a waiting batch was moved away from by re-placement, oldest first.
    moved_from: list[Flavor] = []

    def queue(self, reason: Reason, at: datetime, message: str | None = None) -> None:
        """Back to waiting for quota (a retry, a requeue after a dead runner, a resubmit)."""
        self.phase, self.admission, self.reason = BatchPhase.PENDING, Admission.PENDING, reason
        self.message, self.pending_since = message, at

    def admit(self, at: datetime) -> None:
        """Quota granted: the batch runs, one more attempt."""
        self.phase, self.admission, self.queue_position = (
            BatchPhase.RUNNING,
            Admission.ADMITTED,
            None,
        )
        self.reason, self.message = Reason.ADMITTED, None
        self.started_at, self.attempts = at, self.attempts + 1

    def wait_on_provider(self, message: str | None) -> bool:
        """A running batch whose QPU provider queues its job (``message`` says where), or no
        longer does (None). Returns whether anything changed."""
        reason = Reason.PROVIDER_QUEUED if message else Reason.ADMITTED
        changed = (self.reason, self.message) != (reason, message)
        self.reason, self.message = reason, message
        return changed

    def succeed(self, at: datetime, duration_s: float, *, reused: bool) -> None:
        self.phase, self.admission = BatchPhase.SUCCEEDED, Admission.FINISHED
        self.reason = Reason.RESULT_STORED if reused else Reason.COMPLETED
        self.finished_at, self.duration_s = at, round(duration_s, 3)

    def fail(self, reason: Reason, at: datetime, message: str | None = None) -> None:
        self.phase, self.admission, self.reason = BatchPhase.FAILED, Admission.FINISHED, reason
        self.finished_at, self.message = at, message if message is not None else self.message

    def move(self, flavor: Flavor, at: datetime, message: str) -> None:
        """Re-placement: a batch still waiting goes to another flavor's queue (it never ran
        there, so it runs once, wherever it ends up)."""
        self.moved_from = [*self.moved_from, self.flavor]
        self.flavor = flavor
        self.queue(Reason.REPLACED, at, message)

    def reset(self, at: datetime) -> None:
        """Forget a failed or unfinished attempt: queued anew as if never run (a resubmit)."""
        self.queue(Reason.RESUBMITTED, at)
        self.attempts = 0
        self.started_at = self.finished_at = self.duration_s = None

    @property
    def blocked(self) -> bool:
        """Waiting on something that waiting will not fix (see ``BLOCKING_REASONS``)."""
        return self.phase == BatchPhase.PENDING and self.reason in BLOCKING_REASONS

    @property
    def state(self) -> str:
        """One word per batch for summaries: where it is between the queue and its result."""
        if self.phase != BatchPhase.PENDING:
            return {"Running": "running", "Succeeded": "finished", "Failed": "failed"}[
                self.phase.value
            ]
        return self.admission.value if self.admission != Admission.FINISHED else "pending"


class WorkflowStatus(BaseModel):
    """A workflow as both backends report it: the phase Argo would give, and every batch."""

    model_config = ConfigDict(extra="forbid")

    name: str
    backend: str
    phase: WorkflowPhase
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    ui_url: str | None = None
    batches: list[BatchStatus] = []

    def stop(self, message: str = "Stopped") -> None:
        self.phase, self.message = WorkflowPhase.FAILED, message

    @property
    def total(self) -> int:
        return len(self.batches)

    @property
    def done(self) -> int:
        return sum(1 for b in self.batches if b.phase == BatchPhase.SUCCEEDED)

    @property
    def progress(self) -> str:
        """Argo's ``status.progress`` form: ``done/total``."""
        return f"{self.done}/{self.total}"

    @property
    def all_admitted(self) -> bool:
        return all(b.admission != Admission.PENDING for b in self.batches)

    @property
    def failed_batches(self) -> list[BatchStatus]:
        return [b for b in self.batches if b.phase == BatchPhase.FAILED]

    def by_flavor(self) -> dict[str, dict[str, int]]:
        """Per flavor, how many batches are pending, admitted, running, finished, failed, evicted."""
        summary: dict[str, Counter] = {}
        for batch in self.batches:
            summary.setdefault(batch.flavor.value, Counter())[batch.state] += 1
        return {flavor: dict(counts) for flavor, counts in sorted(summary.items())}

    def queue_wait_seconds(self, now: datetime | None = None) -> float:
        """How long the workflow has had batches waiting for quota and none running.

        Zero while any batch runs: a batch waiting behind its own workflow's running batches
        is throughput, not a stuck queue. Computed from timestamps only, so a sensor in
        reschedule mode (no memory between pokes) gets the same answer.
        """
        if any(b.phase == BatchPhase.RUNNING for b in self.batches):
            return 0.0
        waiting = [b for b in self.batches if b.admission in (Admission.PENDING, Admission.EVICTED)]
        if not waiting:
            return 0.0
        now = now or datetime.now(timezone.utc)
        moments = [b.finished_at for b in self.batches if b.finished_at]
        moments += [b.pending_since for b in waiting if b.pending_since]
        if self.started_at:
            moments.append(self.started_at)
        return max(0.0, (now - max(moments)).total_seconds()) if moments else 0.0

    def summary_line(self) -> str:
        flavors = "; ".join(
            f"{flavor}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            for flavor, counts in self.by_flavor().items()
        )
        return f"{self.phase.value} {self.progress} batches done ({flavors})"
