"""When is a wait over? One decision for the sensor (poke mode) and the trigger.

No Airflow imports: the sensor turns a verdict into a task result or failure, the trigger into
a TriggerEvent, and both log the same progress lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
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
