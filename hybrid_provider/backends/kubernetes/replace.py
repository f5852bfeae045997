"""Re-placement on a cluster: a batch still waiting for quota moves to another flavor's queue.

A workflow compiled for ``flavor="auto"`` runs every batch from one movable template whose
flavor, LocalQueue, image and resources are inputs read from the workflow's moves ConfigMap,
falling back to the flavor the batch was placed on. Moving a batch is two writes:

1. its new flavor's values go into the ConfigMap (owned by the workflow, so deleting the
   workflow deletes it too), with where it came from and why;
2. its pending pod is deleted, but only as it was read: still gated by Kueue, same
   resourceVersion. If Kueue admitted it in between, the delete is refused and step 1 is
   undone, so the batch runs where it was admitted.

Argo sees the pod of a pending node gone and creates it again from the template, which now
reads the new flavor: the same node, the same attempt, in the other flavor's queue. The pod
never started, so the batch runs once. Whoever reads the run's status (the trigger, or the
sensor when it pokes) applies the rule; a run nobody watches is not re-placed.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from hybrid_provider.backends.kubernetes.compile import (
    KubernetesOptions,
    Movable,
    flavor_values,
    moved_key,
    moves_configmap,
)
from hybrid_provider.backends.kubernetes.status import (
    MOVE_MESSAGE,
    MOVED_FROM,
    MovedBatch,
    pod_of,
    recorded_moves,
)
from hybrid_provider.backends.spec import Replacement
from hybrid_provider.backends.status import Admission, BatchPhase, WorkflowStatus
from hybrid_provider.constants import KUEUE_ADMISSION_GATE, LABEL_PREFIX, Flavor
from hybrid_provider.placement.moves import Move, due_moves
from hybrid_provider.placement.telemetry import TelemetrySnapshot

if TYPE_CHECKING:
    from hybrid_provider.hooks.kubernetes import Call

Obj = dict[str, Any]
log = logging.getLogger(__name__)
#: Argo reads parameters only from ConfigMaps that carry this label.
ARGO_PARAMETER_LABEL = {"workflows.argoproj.io/configmap-type": "Parameter"}


def _move_data(
    move: Move, values: dict[str, str], before: MovedBatch | None
) -> dict[str, str | None]:
    sources = [*(before.moved_from if before else []), move.source]
    data: dict[str, str | None] = {moved_key(move.batch, k): v for k, v in values.items()}
    data[moved_key(move.batch, MOVED_FROM)] = ",".join(f.value for f in sources)
    data[moved_key(move.batch, MOVE_MESSAGE)] = move.message
    return data


def free_for_moves(
    snapshot: TelemetrySnapshot, status: WorkflowStatus, options: KubernetesOptions
) -> dict[Flavor, int]:
    """Per eligible flavor, slots neither in use nor promised to workloads queued ahead of a
    moved pod. The ClusterQueue's pending count includes this run's own waiting batches; those
    are not ahead of a batch that leaves them, so they are not subtracted."""
    ours = Counter(
        options.queue_of(b.flavor) for b in status.batches if b.phase == BatchPhase.PENDING
    )
    free = {}
    for flavor, queue in snapshot.flavors.items():
        if queue.eligible:
            ahead = max(0, (queue.pending or 0) - ours[options.queue_of(flavor)])
            free[flavor] = queue.free - ahead
    return free


def candidates(status: WorkflowStatus, rule: Replacement, now: datetime) -> list[Move]:
    """Moves that would be due if every flavor had room: nothing to ask Kueue about if none."""
    unlimited = dict.fromkeys(rule.flavors, len(status.batches))
    return due_moves(status.batches, rule, unlimited, _busy(status), now)


def _busy(status: WorkflowStatus) -> set[Flavor]:
    return {
        b.flavor
        for b in status.batches
        if b.phase == BatchPhase.RUNNING or b.admission == Admission.ADMITTED
    }


def withdrawable(pod: Obj | None) -> bool:
    """A pod Kueue has not admitted yet (still gated, pending, not being deleted)."""
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return False
    gates = {g.get("name") for g in (pod.get("spec") or {}).get("schedulingGates") or []}
    return KUEUE_ADMISSION_GATE in gates and (pod.get("status") or {}).get("phase") == "Pending"


def replace_waiting(
    hook: Any,
    workflow: Obj,
    status: WorkflowStatus,
    pods: list[Obj],
    configmap: Obj | None,
    options: KubernetesOptions,
    movable: Movable,
) -> Call[list[Move]]:
    """Move the batches the rule says are due, as one conversation either hook holds.

    Reads Kueue's queues only when some batch has waited long enough; returns the moves made.
    """
    from hybrid_provider.backends.kubernetes.telemetry import kueue_snapshot, read_queues
    from hybrid_provider.hooks.kubernetes import KubernetesCalls as calls

    rule = movable.rule
    now = datetime.now(timezone.utc)
    if not candidates(status, rule, now):
        return []
    namespace = workflow["metadata"]["namespace"]
    snapshot = kueue_snapshot(options, (yield from read_queues(hook, options, namespace)))
    moves = due_moves(
        status.batches, rule, free_for_moves(snapshot, status, options), _busy(status), now
    )
    before = dict((configmap or {}).get("data") or {})
    recorded = recorded_moves(configmap)
    made = []
    for move in moves:
        pod = pod_of(pods, move.batch, move.source)
        if not withdrawable(pod):
            continue
        values = flavor_values(move.target, options, movable.queue_name)
        data = _move_data(move, values, recorded.get(move.batch))
        yield from calls.apply_configmap_data.function(hook, _configmap(workflow, data))
        if not (yield from calls.delete_pending_pod.function(hook, pod)):
            undo = {key: before.get(key) for key in data}  # as they were; absent ones removed
            yield from calls.apply_configmap_data.function(hook, _configmap(workflow, undo))
            continue
        log.info("batch %d of %s %s", move.batch, workflow["metadata"]["name"], move.message)
        made.append(move)
    return made


def _configmap(workflow: Obj, data: dict[str, str | None]) -> Obj:
    meta = workflow["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": moves_configmap(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {**ARGO_PARAMETER_LABEL, f"{LABEL_PREFIX}/workflow": meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": workflow.get("apiVersion", "argoproj.io/v1alpha1"),
                    "kind": "Workflow",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "data": data,
    }
