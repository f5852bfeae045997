"""Normalise an Argo Workflow, its pods and their Kueue Workloads into a WorkflowStatus.

Pure functions over the JSON the Kubernetes API returns, shared by the sync backend (sensor
in poke mode) and the async one (trigger). Admission comes from the pods' Workloads and
never from the workflow phase: Argo reports ``Running`` while every pod still waits for quota.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timezone
from typing import Any, NamedTuple

from hybrid_provider.backends.kubernetes.compile import (
    MOVABLE_TEMPLATE,
    batches_of,
    movable_of,
    moved_key,
    template_name,
)
from hybrid_provider.backends.status import (
    BLOCKED_AFTER_S,
    BLOCKING_REASONS,
    Admission,
    BatchPhase,
    BatchStatus,
    Preemption,
    Reason,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.constants import (
    BATCH_LABEL,
    FLAVORS,
    KUEUE_ADMISSION_GATE,
    KUEUE_QUEUE_NAME_LABEL,
    Flavor,
)

Obj = dict[str, Any]
#: Condition Kueue puts on a pod it is stopping (preemption, eviction) before deleting it.
TERMINATION_TARGET = "TerminationTarget"
#: Keys of the moves ConfigMap besides a flavor's template inputs (``replace.py`` writes it).
MOVED_FROM, MOVE_MESSAGE = "moved-from", "move-message"


class MovedBatch(NamedTuple):
    """What the moves ConfigMap says of one batch: its flavor now, where it was, why."""

    flavor: Flavor
    moved_from: list[Flavor]
    message: str


def recorded_moves(configmap: Obj | None) -> dict[int, MovedBatch]:
    """The batches the ConfigMap moved, by index (keys it does not know are ignored)."""
    data = (configmap or {}).get("data") or {}
    moved = {}
    for key, value in data.items():
        index, _, name = key.removeprefix("batch-").partition(".")
        if name != "flavor" or not index.isdigit() or value not in FLAVORS:
            continue
        sources = data.get(moved_key(index, MOVED_FROM), "")
        moved[int(index)] = MovedBatch(
            flavor=Flavor(value),
            moved_from=[Flavor(f) for f in sources.split(",") if f in FLAVORS],
            message=data.get(moved_key(index, MOVE_MESSAGE), ""),
        )
    return moved


def workflow_nodes(workflow: Obj) -> dict[str, Obj]:
    """``status.nodes``, or Argo's gzip+base64 ``status.compressedNodes`` when it offloaded them."""
    status = workflow.get("status") or {}
    if status.get("nodes"):
        return status["nodes"]
    packed = status.get("compressedNodes")
    if packed:
        return json.loads(gzip.decompress(base64.b64decode(packed)))
    return {}


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition(obj: Obj | None, kind: str) -> Obj | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Obj | None, kind: str) -> bool:
    cond = condition(obj, kind)
    return bool(cond and cond.get("status") == "True")


def _parameter(node: Obj, name: str) -> str | None:
    for param in (node.get("inputs") or {}).get("parameters") or []:
        if param.get("name") == name:
            return param.get("value")
    return None


def _batch_nodes(nodes: dict[str, Obj], index: int, template: str) -> tuple[Obj | None, list[Obj]]:
    """The batch's top node (a Retry node, or the Pod node without retries) and its attempts."""
    mine = [
        n
        for n in nodes.values()
        if n.get("templateName") == template and _parameter(n, "batch") == str(index)
    ]
    retry = next((n for n in mine if n.get("type") == "Retry"), None)
    pods = [n for n in mine if n.get("type") == "Pod"]
    pods.sort(key=lambda n: (n.get("startedAt") or "", n.get("name", "")))
    return retry or (pods[-1] if pods else None), pods


def pod_of(pods: list[Obj], index: int, flavor: str) -> Obj | None:
    """The newest pod of a batch (a retried batch has a new pod per attempt)."""
    mine = [
        p
        for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get(BATCH_LABEL) == str(index)
        and (p.get("metadata", {}).get("labels") or {}).get("hybrid-quantum.io/flavor") == flavor
    ]
    mine.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    return mine[-1] if mine else None


def workload_of(pod: Obj | None, workloads: list[Obj]) -> Obj | None:
    if not pod:
        return None
    uid = pod["metadata"].get("uid")
    for workload in workloads:
        if (workload["metadata"].get("labels") or {}).get("kueue.x-k8s.io/job-uid") == uid:
            return workload
    owned = [
        w
        for w in workloads
        if any(ref.get("uid") == uid for ref in w["metadata"].get("ownerReferences") or [])
    ]
    return owned[0] if owned else None


def local_queue_of(pod: Obj | None) -> str | None:
    if not pod:
        return None
    return (pod["metadata"].get("labels") or {}).get(KUEUE_QUEUE_NAME_LABEL)


def _admission(
    node_phase: str | None,
    pod: Obj | None,
    workload: Obj | None,
    positions: dict[str, Obj],
) -> tuple[Admission, str | None, str | None, int | None]:
    """(admission, reason, message, queue position) from the pod's Workload.

    Eviction is read before Finished: Kueue marks a preempted pod's Workload Finished soon
    after evicting it, and the pod itself carries the ``TerminationTarget`` condition while
    it is being deleted.
    """
    for kind in ("Evicted", "Preempted"):
        cond = condition(workload, kind)
        if cond and cond.get("status") == "True" and node_phase not in ("Succeeded",):
            return Admission.EVICTED, cond.get("reason") or kind, cond.get("message"), None
    target = condition(pod, TERMINATION_TARGET)
    if target and target.get("status") == "True" and node_phase not in ("Succeeded",):
        return Admission.EVICTED, target.get("reason") or "Preempted", target.get("message"), None
    if node_phase in ("Succeeded", "Failed", "Error") or is_true(workload, "Finished"):
        return Admission.FINISHED, None, None, None
    if is_true(workload, "Admitted"):
        return Admission.ADMITTED, "Admitted", None, None
    if pod is None:
        return Admission.PENDING, "PodNotCreated", "Argo has not created the pod yet", None
    gates = [g.get("name") for g in (pod.get("spec") or {}).get("schedulingGates") or []]
    if workload is None:
        if KUEUE_ADMISSION_GATE in gates:
            return Admission.PENDING, "WorkloadNotCreated", "Kueue has not seen the pod yet", None
        return Admission.ADMITTED, "NotQueued", "the pod is not managed by Kueue", None
    name = workload["metadata"]["name"]
    position = positions.get(name)
    reserved = condition(workload, "QuotaReserved")
    if reserved and reserved.get("status") == "True":
        return (
            Admission.PENDING,
            "QuotaReserved",
            "quota reserved, waiting for admission checks",
            None,
        )
    reason = (reserved or {}).get("reason") or "Pending"
    message = (reserved or {}).get("message") or "waiting for quota"
    requeued = condition(workload, "Requeued")
    if requeued and requeued.get("status") == "True" and requeued.get("reason"):
        reason = f"{reason} (requeued: {requeued['reason']})"
    where = None
    if position:
        where = position.get("positionInLocalQueue")
        message += (
            f"; position {where} in LocalQueue {position.get('localQueueName') or '?'}, "
            f"{position.get('positionInClusterQueue')} in its ClusterQueue"
        )
    return Admission.PENDING, reason, message, where


def argo_pod_name(workflow_name: str, node: Obj) -> str:
    """The pod Argo made for a node (its v2 naming: workflow-template-fnv32a(node name))."""
    digest = 0x811C9DC5
    for byte in node.get("name", "").encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    prefix = (
        f"{workflow_name}-{node['templateName']}" if node.get("templateName") else workflow_name
    )
    return f"{prefix[:242]}-{digest}"


def preemptions_of(
    pod_names: list[str], events: list[Obj], since: datetime | None = None
) -> list[Preemption]:
    """Kueue's ``Preempted`` events on the Workloads of these pods (``pod-<pod>-<hash>``).

    Events outlive the preempted pod and its Workload, which are gone within seconds, so a
    sensor that polls every few minutes still learns what happened and when. Pod names are
    deterministic, so events from before ``since`` (the workflow's creation) belong to an
    earlier workflow of the same name and are left out.
    """
    found = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if event.get("reason") != "Preempted" or involved.get("kind") != "Workload":
            continue
        if any(involved.get("name", "").startswith(f"pod-{pod}-") for pod in pod_names):
            stamp = parse_time(event.get("lastTimestamp") or event.get("eventTime")
                               or (event.get("metadata") or {}).get("creationTimestamp"))  # fmt: skip
            if stamp and (since is None or stamp >= since):
                found.append(Preemption(at=stamp, message=event.get("message") or "Preempted"))
    return sorted(found, key=lambda p: p.at)


def blocker(
    pod: Obj | None, events: list[Obj], now: datetime | None = None
) -> tuple[str, str] | None:
    """Why a pod cannot start, when waiting will not help: a container the node cannot
    configure (its state says so now), or a volume of this very pod (matched by uid) that
    cannot be mounted while none of its containers has started.

    Only once the pod has waited ``BLOCKED_AFTER_S``: a Secret created a moment after the
    workflow is not an error.
    """
    if not pod:
        return None
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    now = now or datetime.now(timezone.utc)
    if created is None or (now - created).total_seconds() < BLOCKED_AFTER_S:
        return None
    status = pod.get("status") or {}
    containers = (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    )
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BLOCKING_REASONS:
            return waiting["reason"], f"container {container.get('name')}: " + (
                waiting.get("message") or waiting["reason"]
            )
    if any({"running", "terminated"} & set(c.get("state") or {}) for c in containers):
        return None  # the volumes were mounted: an earlier FailedMount is history
    uid = pod["metadata"].get("uid")
    for event in events:
        involved = event.get("involvedObject") or {}
        if event.get("reason") == "FailedMount" and uid and involved.get("uid") == uid:
            return "FailedMount", event.get("message") or "a volume cannot be mounted"
    return None


def build_status(
    workflow: Obj,
    pods: list[Obj],
    workloads: list[Obj],
    positions: dict[str, Obj] | None = None,
    ui_url: str | None = None,
    events: list[Obj] | None = None,
    moves: dict[int, MovedBatch] | None = None,
) -> WorkflowStatus:
    """The normalised status. ``positions`` maps Workload name -> visibility API entry;
    ``events`` are the namespace's events about pods (FailedMount) and Workloads (Preempted);
    ``moves`` the batches re-placement moved (their flavor now, where they were)."""
    positions = positions or {}
    events = events or []
    moves = moves or {}
    name = workflow["metadata"]["name"]
    nodes = workflow_nodes(workflow)
    wf_status = workflow.get("status") or {}
    movable = movable_of(workflow) is not None
    batches = []
    for index, placed in batches_of(workflow):
        moved = moves.get(index)
        flavor = moved.flavor if moved else placed
        top, attempts = _batch_nodes(
            nodes, index, MOVABLE_TEMPLATE if movable else template_name(placed)
        )
        pod = pod_of(pods, index, flavor)
        workload = workload_of(pod, workloads)
        last = attempts[-1] if attempts else None
        top_phase = (top or {}).get("phase")
        admission, reason, message, position = _admission(top_phase, pod, workload, positions)
        blocked = (
            blocker(pod, events) if top_phase not in ("Succeeded", "Failed", "Error") else None
        )
        if blocked and admission != Admission.EVICTED:
            reason, message = blocked
        pod_phase = ((pod or {}).get("status") or {}).get("phase")
        if top_phase == "Succeeded":
            phase = BatchPhase.SUCCEEDED
        elif top_phase in ("Failed", "Error"):
            phase = BatchPhase.FAILED
            reason = "Failed"
            message = (last or top or {}).get("message") or (top or {}).get("message")
            exit_code = (((last or {}).get("outputs") or {}).get("exitCode")) or None
            if exit_code:
                message = f"{message or 'failed'} (exit code {exit_code})"
        elif admission == Admission.ADMITTED and (
            pod_phase == "Running" or (last or {}).get("phase") == "Running"
        ):
            phase = BatchPhase.RUNNING
        else:
            phase = BatchPhase.PENDING
        earlier = [a for a in attempts[:-1] if a.get("phase") in ("Failed", "Error")]
        if admission == Admission.PENDING and earlier and not blocked:
            why = earlier[-1].get("message") or earlier[-1].get("phase")
            reason = "Requeued"
            message = f"attempt {len(earlier)} ended: {why}; {message or 'waiting for quota'}"
        elif moved and admission == Admission.PENDING and not blocked:
            reason = Reason.REPLACED
            message = f"{moved.message}; {message or 'waiting for quota'}"
        admitted = condition(workload, "Admitted")
        started = (
            parse_time(admitted.get("lastTransitionTime"))
            if admitted and admitted.get("status") == "True"
            else parse_time(((pod or {}).get("status") or {}).get("startTime"))
        )
        finished = (
            parse_time((top or {}).get("finishedAt"))
            if phase
            in (
                BatchPhase.SUCCEEDED,
                BatchPhase.FAILED,
            )
            else None
        )
        if started is None and last is not None and phase != BatchPhase.PENDING:
            started = parse_time(last.get("startedAt"))
        pending_since = parse_time(
            ((pod or {}).get("metadata") or {}).get("creationTimestamp")
        ) or parse_time((last or top or {}).get("startedAt"))
        batches.append(
            BatchStatus(
                index=index,
                flavor=Flavor(flavor),
                phase=phase,
                admission=admission,
                queue_position=position,
                reason=reason,
                message=message,
                pending_since=pending_since,
                started_at=started,
                finished_at=finished,
                duration_s=(finished - started).total_seconds() if started and finished else None,
                attempts=len(attempts),
                preemptions=preemptions_of(
                    [argo_pod_name(name, a) for a in attempts],
                    events,
                    parse_time(workflow["metadata"].get("creationTimestamp")),
                ),
                moved_from=moved.moved_from if moved else [],
            )
        )
    phase_text = wf_status.get("phase") or "Pending"
    try:
        workflow_phase = WorkflowPhase(phase_text)
    except ValueError:
        workflow_phase = WorkflowPhase.PENDING
    return WorkflowStatus(
        name=name,
        backend="kubernetes",
        phase=workflow_phase,
        message=wf_status.get("message"),
        started_at=parse_time(wf_status.get("startedAt"))
        or parse_time(workflow["metadata"].get("creationTimestamp")),
        finished_at=parse_time(wf_status.get("finishedAt")),
        updated_at=None,
        ui_url=ui_url,
        batches=batches,
    )


def pending_queues(pods: list[Obj], workloads: list[Obj]) -> set[str]:
    """LocalQueues that hold at least one of these pods' Workloads waiting for quota."""
    queues = set()
    for pod in pods:
        workload = workload_of(pod, workloads)
        if workload is not None and not is_true(workload, "QuotaReserved"):
            queue = local_queue_of(pod) or (workload.get("spec") or {}).get("queueName")
            if queue and not is_true(workload, "Finished"):
                queues.add(queue)
    return queues


def positions_by_workload(pending_lists: list[Obj]) -> dict[str, Obj]:
    """Workload name -> entry, from visibility API ``PendingWorkloadsSummary`` responses."""
    out: dict[str, Obj] = {}
    for summary in pending_lists:
        for item in summary.get("items") or []:
            name = (item.get("metadata") or {}).get("name")
            if name:
                out[name] = item
    return out
