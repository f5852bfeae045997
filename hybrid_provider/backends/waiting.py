"""When is a wait over? One decision for the sensor (poke mode) and the trigger.

No Airflow imports: the sensor turns a verdict into a task result or failure, the trigger into
a TriggerEvent, and both log the same progress lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    WorkflowPhase,
    WorkflowStatus,
)

TARGETS = ("admitted", "finished")


class WaitState(StrEnum):
    """Where a wait stands; the trigger's events carry the value."""

    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    QUEUE_TIMEOUT = "queue_timeout"
    #: A batch cannot start and waiting will not change that (a missing Secret or queue, ...).
    BLOCKED = "blocked"
    #: The backend could not be read (no such workflow, an unreachable cluster).
    UNREACHABLE = "unreachable"

    @property
    def gives_up(self) -> bool:
        """The workflow is stopped, so that its pods hold no quota and leave nothing behind; a
        new try of the task replaces it."""
        return self in (WaitState.BLOCKED, WaitState.QUEUE_TIMEOUT)


@dataclass(frozen=True)
class Verdict:
    state: WaitState
    message: str = ""

    @property
    def over(self) -> bool:
        return self.state != WaitState.WAITING


#: The first pause between two polls of a wait; each pause doubles up to the poll interval.
FIRST_POLL_SECONDS = 0.5


def poll_pauses(interval: float) -> Iterator[float]:
    """Pauses between polls: 0.5 s, 1 s, 2 s, … up to ``interval``, then ``interval``.

    A run of a few seconds is noticed within a second or two of finishing, not a whole poll
    interval later, while a run of hours is still polled only every ``interval``.
    """
    pause = min(FIRST_POLL_SECONDS, interval)
    while True:
        yield pause
        pause = min(pause * 2, interval)


def evaluate(status: WorkflowStatus, target: str, queue_wait_timeout: float | None) -> Verdict:
    if status.phase in (WorkflowPhase.FAILED, WorkflowPhase.ERROR):
        return Verdict(WaitState.FAILED, failure_message(status))
    if status.phase.finished or (target == "admitted" and status.all_admitted and status.total):
        return Verdict(WaitState.DONE, status.summary_line())
    blocked = [b for b in status.batches if b.blocked]
    if blocked:
        return Verdict(WaitState.BLOCKED, blocked_message(status.name, blocked))
    waited = status.queue_wait_seconds()
    if queue_wait_timeout is not None and waited > queue_wait_timeout:
        return Verdict(
            WaitState.QUEUE_TIMEOUT,
            f"queue wait exceeded: batches of {status.name} waited {waited:.0f} s for quota "
            f"(limit {queue_wait_timeout:.0f} s) with none running; "
            + pending_description(status)
            + ". Raise the queue's quota, lower the priority of competing work, or raise "
            "queue_wait_timeout",
        )
    return Verdict(WaitState.WAITING, status.summary_line())


def blocked_message(name: str, blocked: list) -> str:
    first = blocked[0]
    others = f" (and {len(blocked) - 1} more batches)" if len(blocked) > 1 else ""
    return (
        f"batch {first.index} of {name} cannot start{others}: {first.reason}: {first.message}. "
        "Create what it names in the workflow's namespace (the chart's store Secret, "
        "LocalQueue and ClusterQueue, or the executor image), or point the hybrid_quantum "
        "connection at the right ones"
    )


#: What a wait remembers of each batch (by index) between polls: state, attempts, preemptions.
Seen = dict[int, tuple[str, int, int]]


def batch_name(index: int, total: int) -> str:
    """One numbering everywhere: the 0-based index (as in the report, the runner's log and
    the workflow's tasks), with its place for a reader who counts from one."""
    return f"batch {index} ({index + 1} of {total})"


def transitions(seen: Seen, status: WorkflowStatus) -> tuple[list[str], Seen]:
    """One line per batch whose state, attempt or preemptions changed since the previous poll
    (``seen``; empty at the first, which logs every batch as it stands), with when it happened
    by the backend's clock, and what the next poll compares with."""
    now: Seen = {b.index: (b.state, b.attempts, len(b.preemptions)) for b in status.batches}
    lines = []
    for b in status.batches:
        before = seen.get(b.index)
        if before == now[b.index]:
            continue
        name = f"{batch_name(b.index, status.total)} {b.flavor}"
        for preemption in b.preemptions[before[2] if before else 0 :]:
            lines.append(f"{name}: preempted at {clock(preemption.at)}: {preemption.message}")
        was = f"{before[0]} -> " if before else ""
        lines.append(f"{name}: {was}{b.state}{_transition_detail(b)}")
    return lines, now


def _transition_detail(batch: BatchStatus) -> str:
    """When and how a batch reached its state (the poll may see it later)."""
    if batch.phase == BatchPhase.SUCCEEDED:
        took = f" in {batch.duration_s:.1f} s" if batch.duration_s is not None else ""
        return f" at {clock(batch.finished_at)}{took}, attempt {batch.attempts}"
    if batch.phase == BatchPhase.FAILED:
        return f" at {clock(batch.finished_at)}: {batch.message or batch.reason}"
    if batch.phase == BatchPhase.RUNNING:
        return f" at {clock(batch.started_at)}, attempt {batch.attempts}"
    if batch.admission == Admission.EVICTED:
        return f": {batch.reason or 'Evicted'}: {batch.message or 'no message'}"
    where = f", queue position {batch.queue_position}" if batch.queue_position is not None else ""
    return f" since {clock(batch.pending_since)}{where}"


def clock(moment: datetime | None) -> str:
    """A moment as the wait's lines show it: UTC, to the millisecond; "—" when unknown."""
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3] if moment else "—"


def progress_lines(status: WorkflowStatus) -> list[str]:
    """What a poke logs: the summary, who waits for quota (why, where), who was evicted or
    preempted (and when)."""
    lines = [f"{status.name}: {status.summary_line()}"]
    if any(b.phase == BatchPhase.PENDING for b in status.batches):
        lines.append("Waiting for admission: " + pending_description(status))
    evicted = eviction_description(status)
    if evicted:
        lines.append("Evicted: " + evicted)
    preempted = preemption_description(status)
    if preempted:
        lines.append("Preempted: " + preempted)
    return lines


def preemption_description(status: WorkflowStatus) -> str:
    parts = [
        f"batch {b.index} ({b.flavor}) at {p.at.isoformat(timespec='seconds')}: {p.message}"
        for b in status.batches
        for p in b.preemptions
    ]
    return _capped(parts)


def pending_description(status: WorkflowStatus) -> str:
    parts = []
    for batch in status.batches:
        if batch.phase == BatchPhase.PENDING and batch.admission != Admission.EVICTED:
            why = batch.message or batch.reason or "waiting for quota"
            where = (
                f"position {batch.queue_position}"
                if batch.queue_position is not None and "position" not in why
                else ""
            )
            parts.append(
                f"batch {batch.index} ({batch.flavor}, {why}{', ' + where if where else ''})"
            )
    return _capped(parts)


def eviction_description(status: WorkflowStatus) -> str:
    parts = [
        f"batch {b.index} ({b.flavor}, {b.reason or 'Evicted'}: {b.message or 'no message'})"
        for b in status.batches
        if b.admission == Admission.EVICTED
    ]
    return _capped(parts)


def _capped(parts: list[str], limit: int = 10) -> str:
    extra = f"; and {len(parts) - limit} more" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + extra


def failure_message(status: WorkflowStatus) -> str:
    failed = status.failed_batches
    details = "; ".join(f"batch {b.index}: {b.message or b.reason}" for b in failed[:10])
    return f"workflow {status.name} {status.phase.value}: {status.message or ''}" + (
        f" — failed batches: {details}" if details else ""
    )


def summary(status: WorkflowStatus) -> dict[str, Any]:
    return {
        "workflow_name": status.name,
        "phase": status.phase.value,
        "progress": status.progress,
        "by_flavor": status.by_flavor(),
        "ui_url": status.ui_url,
    }
