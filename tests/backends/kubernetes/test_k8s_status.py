"""The status reader's pure decisions, as tables: what the real controllers write, read right.

The shapes here were seen on the real engines (tests/controlplane): Argo's pod names, Kueue's
``Preempted`` events and ``TerminationTarget`` condition, the node's ``FailedMount`` and
``CreateContainerConfigError``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hybrid_provider.backends.kubernetes.status import (
    _admission,
    argo_pod_name,
    blocker,
    preemptions_of,
)
from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.backends.waiting import WaitState, evaluate

WORKFLOW = "hq-preempt-nightly"


@pytest.mark.parametrize(
    ("node_name", "pod_name"),
    [  # as Argo v4.0.7 named them on the real control plane
        (f"{WORKFLOW}.batches-cpu(1:1)(0)", f"{WORKFLOW}-run-batch-cpu-3821899125"),
        (f"{WORKFLOW}.batches-cpu(0:0)(0)", f"{WORKFLOW}-run-batch-cpu-1024695137"),
    ],
)
def test_pod_names_are_the_ones_argo_gives(node_name, pod_name):
    assert argo_pod_name(WORKFLOW, {"name": node_name, "templateName": "run-batch-cpu"}) == pod_name


def _event(
    reason: str, kind: str, name: str, at: str = "2026-11-28T20:51:22Z", uid: str = "u1"
) -> dict:
    return {
        "reason": reason,
        "involvedObject": {"kind": kind, "name": name, "uid": uid},
        "lastTimestamp": at,
        "message": f"{reason} for {name}",
    }


def test_preemptions_are_kueues_events_on_the_workloads_of_the_batch_pods():
    pod = f"{WORKFLOW}-run-batch-cpu-3821899125"
    events = [
        _event("Preempted", "Workload", f"pod-{pod}-62855", "2026-11-28T20:51:22Z"),
        _event("Preempted", "Workload", f"pod-{pod}-9a1b2", "2026-11-28T20:50:00Z"),
        _event("Preempted", "Workload", f"pod-{WORKFLOW}-run-batch-cpu-1-00000"),
        _event("Stopped", "Pod", pod),
    ]
    found = preemptions_of([pod], events)
    assert [p.at.isoformat() for p in found] == [
        "2026-11-28T20:50:00+00:00",
        "2026-11-28T20:51:22+00:00",
    ]
    # pod names repeat when a failed workflow is replaced: older events are not this one's
    since = datetime(2026, 11, 28, 20, 51, tzinfo=timezone.utc)
    assert [p.at.minute for p in preemptions_of([pod], events, since)] == [51]


def _workload(**conditions: str) -> dict:
    return {
        "metadata": {"name": "pod-x-1"},
        "status": {"conditions": [{"type": k, "status": v} for k, v in conditions.items()]},
    }


@pytest.mark.parametrize(
    ("node_phase", "pod_conditions", "workload", "expected"),
    [
        # Kueue marks a preempted pod's Workload Finished soon after evicting it
        ("Running", {}, _workload(Evicted="True", Finished="True"), Admission.EVICTED),
        ("Running", {"TerminationTarget": "True"}, _workload(Admitted="True"), Admission.EVICTED),
        ("Succeeded", {}, _workload(Evicted="True", Finished="True"), Admission.FINISHED),
        ("Running", {}, _workload(Admitted="True"), Admission.ADMITTED),
        ("Failed", {}, _workload(Finished="True"), Admission.FINISHED),
    ],
)
def test_eviction_is_read_before_finished(node_phase, pod_conditions, workload, expected):
    pod = {
        "metadata": {"name": "x", "uid": "u"},
        "status": {"conditions": [{"type": k, "status": v} for k, v in pod_conditions.items()]},
    }
    assert _admission(node_phase, pod, workload, {})[0] == expected


NOW = datetime(2026, 11, 28, 21, 0, tzinfo=timezone.utc)


def _pod(waiting: str | None, message: str = "", age_s: float = 60, started: bool = False):
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {}
    init = (
        {"terminated": {"exitCode": 0}} if started else {"waiting": {"reason": "PodInitializing"}}
    )
    created = (NOW - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": "p", "uid": "u1", "creationTimestamp": created},
        "status": {
            "initContainerStatuses": [{"name": "init", "state": init}],
            "containerStatuses": [{"name": "main", "state": state}],
        },
    }


MISSING = 'secret "hybrid-quantum-store" not found'


@pytest.mark.parametrize(
    ("pod", "events", "expected"),
    [
        (_pod("ContainerCreating"), [], None),
        (_pod(None), [], None),
        (_pod("CreateContainerConfigError", MISSING), [], "CreateContainerConfigError"),
        (_pod("CreateContainerConfigError", MISSING, age_s=5), [], None),  # give it a moment
        # the init container ran; the main container's env names a missing Secret
        (
            _pod("CreateContainerConfigError", MISSING, started=True),
            [],
            "CreateContainerConfigError",
        ),
        (_pod("ErrImagePull"), [], None),  # registries fail transiently; the kubelet retries
        (_pod("InvalidImageName"), [], "InvalidImageName"),
        (_pod("ContainerCreating"), [_event("FailedMount", "Pod", "p")], "FailedMount"),
        # the same name, an earlier pod (a replaced workflow): not this pod's trouble
        (_pod("ContainerCreating"), [_event("FailedMount", "Pod", "p", uid="u0")], None),
        # a mount that failed once, then worked: the init container ran
        (_pod("ContainerCreating", started=True), [_event("FailedMount", "Pod", "p")], None),
    ],
)
def test_a_batch_is_blocked_only_by_what_waiting_cannot_fix(pod, events, expected):
    found = blocker(pod, events, now=NOW)
    assert (found[0] if found else None) == expected


def test_a_blocked_batch_ends_the_wait_naming_what_is_missing():
    batch = BatchStatus(
        index=3,
        flavor="cpu",
        phase=BatchPhase.PENDING,
        reason="CreateContainerConfigError",
        message='container main: secret "hybrid-quantum-store" not found',
    )
    status = WorkflowStatus(name="hq-x", backend="kubernetes", phase=WorkflowPhase.RUNNING,
                            batches=[batch])  # fmt: skip
    verdict = evaluate(status, "finished", None)
    assert verdict.state == WaitState.BLOCKED
    assert "batch 3 of hq-x cannot start" in verdict.message
    assert 'secret "hybrid-quantum-store" not found' in verdict.message
    waiting = batch.model_copy(update={"reason": "Pending", "message": "waiting for quota"})
    assert evaluate(status.model_copy(update={"batches": [waiting]}), "finished", None).state == (
        WaitState.WAITING
    )
