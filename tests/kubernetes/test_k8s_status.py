"""The status reader's pure decisions, as tables: what the real controllers write, read right.

The shapes here were seen on the real engines (tests/controlplane): Argo's pod names, Kueue's
``Preempted`` events and ``TerminationTarget`` condition, the node's ``FailedMount`` and
``CreateContainerConfigError``.
"""

from __future__ import annotations

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
from hybrid_provider.backends.waiting import BLOCKED, WAITING, evaluate

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


def _event(reason: str, kind: str, name: str, at: str = "2026-11-28T20:51:22Z") -> dict:
    return {
        "reason": reason,
        "involvedObject": {"kind": kind, "name": name},
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


def _pod(waiting_reason: str | None, message: str = "") -> dict:
    state = {"waiting": {"reason": waiting_reason, "message": message}} if waiting_reason else {}
    return {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "main", "state": state}]},
    }


@pytest.mark.parametrize(
    ("pod", "events", "expected"),
    [
        (_pod("ContainerCreating"), [], None),
        (_pod(None), [], None),
        (
            _pod("CreateContainerConfigError", 'secret "hybrid-quantum-store" not found'),
            [],
            "CreateContainerConfigError",
        ),
        (_pod("ErrImagePull"), [], "ErrImagePull"),
        (_pod("ContainerCreating"), [_event("FailedMount", "Pod", "p")], "FailedMount"),
        (_pod("ContainerCreating"), [_event("FailedMount", "Pod", "other")], None),
    ],
)
def test_a_batch_is_blocked_only_by_what_waiting_cannot_fix(pod, events, expected):
    found = blocker(pod, events)
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
    assert verdict.state == BLOCKED
    assert "batch 3 of hq-x cannot start" in verdict.message
    assert 'secret "hybrid-quantum-store" not found' in verdict.message
    waiting = batch.model_copy(update={"reason": "Pending", "message": "waiting for quota"})
    assert evaluate(status.model_copy(update={"batches": [waiting]}), "finished", None).state == (
        WAITING
    )
