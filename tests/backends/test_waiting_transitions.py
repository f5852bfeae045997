"""The wait's per-batch transition lines (``waiting.transitions``), shared by the sensor's
pokes and the trigger's polls: each change logged once, as it is observed, 0-based."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from itertools import islice

from hybrid_provider.backends.status import (
    BatchPhase,
    BatchStatus,
    Preemption,
    Reason,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.backends.waiting import poll_pauses, transitions
from hybrid_provider.triggers import kueue_wait

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)


def _status(*batches: BatchStatus) -> WorkflowStatus:
    return WorkflowStatus(
        name="hq-w", backend="local", phase=WorkflowPhase.RUNNING, batches=list(batches)
    )


def _batch(index: int, **fields) -> BatchStatus:
    return BatchStatus(index=index, flavor="cpu", pending_since=T0, **fields)


def test_the_first_poll_logs_every_batch_as_it_stands():
    lines, seen = transitions({}, _status(_batch(0, queue_position=2), _batch(1)))
    assert lines == [
        "batch 0 (1 of 2) cpu: pending since 01:00:00.000, queue position 2",
        "batch 1 (2 of 2) cpu: pending since 01:00:00.000",
    ]
    assert seen == {0: ("pending", 0, 0), 1: ("pending", 0, 0)}


def test_only_changes_are_logged_with_when_they_happened():
    first = _batch(0)
    second = _batch(1)
    _, seen = transitions({}, _status(first, second))
    assert transitions(seen, _status(first, second))[0] == []  # nothing changed: silent

    first.admit(T0 + timedelta(seconds=3))
    lines, seen = transitions(seen, _status(first, second))
    assert lines == ["batch 0 (1 of 2) cpu: pending -> running at 01:00:03.000, attempt 1"]

    first.succeed(T0 + timedelta(seconds=5.5), 2.5, reused=False)
    second.fail(Reason.ERROR, T0 + timedelta(seconds=6), "exit code 1: boom")
    lines, _ = transitions(seen, _status(first, second))
    assert lines == [
        "batch 0 (1 of 2) cpu: running -> finished at 01:00:05.500 in 2.5 s, attempt 1",
        "batch 1 (2 of 2) cpu: pending -> failed at 01:00:06.000: exit code 1: boom",
    ]


def test_a_preemption_and_the_retry_after_it_are_both_logged():
    batch = _batch(0)
    batch.admit(T0)
    _, seen = transitions({}, _status(batch))
    batch.preemptions = [Preemption(at=T0 + timedelta(seconds=4), message="for hq-urgent")]
    batch.queue(Reason.REQUEUED, T0 + timedelta(seconds=4))
    batch.admit(T0 + timedelta(seconds=9))  # re-admitted before the next poll: still "running"
    lines, seen = transitions(seen, _status(batch))
    assert lines == [
        "batch 0 (1 of 1) cpu: preempted at 01:00:04.000: for hq-urgent",
        "batch 0 (1 of 1) cpu: running -> running at 01:00:09.000, attempt 2",
    ]
    assert seen == {0: ("running", 2, 1)}


def test_polls_start_at_half_a_second_and_double_up_to_the_interval():
    """A run of seconds is noticed soon after it ends; a run of hours costs one poll per
    interval."""
    assert list(islice(poll_pauses(5.0), 6)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(islice(poll_pauses(0.05), 2)) == [0.05, 0.05]  # never longer than asked


def test_the_trigger_holds_a_verdict_until_the_scheduler_has_seen_the_deferral(monkeypatch):
    """A run already finished when the trigger starts: the event still waits for
    MIN_EVENT_AGE_SECONDS, so Airflow's scheduler drains the deferring worker's exit first
    (apache/airflow#67287 fails the resumed task otherwise)."""
    monkeypatch.setattr(kueue_wait, "MIN_EVENT_AGE_SECONDS", 0.4)
    finished = WorkflowStatus(
        name="hq-w",
        backend="local",
        phase=WorkflowPhase.SUCCEEDED,
        batches=[_batch(0, phase=BatchPhase.SUCCEEDED, finished_at=T0)],
    )

    class Finished:
        async def astatus(self, name):
            return finished

    trigger = kueue_wait.KueueWaitTrigger("hq-w", "local", {})
    monkeypatch.setattr(trigger, "_backend", Finished)

    async def first_event():
        started = time.monotonic()
        event = await trigger.run().__anext__()
        return event, time.monotonic() - started

    event, waited = asyncio.run(first_event())
    assert event.payload["state"] == "done"
    assert waited >= 0.4
