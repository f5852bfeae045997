"""Kueue's queues as a placement snapshot: pure functions over the API's JSON, and the one
conversation (``hooks.kubernetes``' sans-IO pattern) that reads them.

Per flavor: its LocalQueue (exists? active?), the ClusterQueue it points at (the flavor's
nominal quota and usage of Kueue's ResourceFlavor, pending workloads) and the visibility API's
pending workloads of the LocalQueue. Quota and usage are turned into *slots*: how many of our
batch pods (their main container plus Argo's wait container, as Kueue counts them) fit.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from hybrid_provider.backends.kubernetes.compile import DEFAULT_RESOURCES, KubernetesOptions
from hybrid_provider.backends.kubernetes.status import condition
from hybrid_provider.constants import DEFAULT_RESOURCE_FLAVORS, Flavor
from hybrid_provider.placement.telemetry import FlavorTelemetry, TelemetrySnapshot

if TYPE_CHECKING:
    from hybrid_provider.hooks.kubernetes import Call

Obj = dict[str, Any]
_SUFFIXES = {
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


class KueueQueues(NamedTuple):
    """What the snapshot is made of, by LocalQueue and ClusterQueue name (None: missing)."""

    local_queues: dict[str, Obj | None]
    cluster_queues: dict[str, Obj | None]
    pending: dict[str, Obj | None]


def quantity(value: Any) -> float:
    """A Kubernetes quantity (``"500m"``, ``"2Gi"``, ``4``) as a number."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value).strip())
    if not match or match.group(2) not in ("", *_SUFFIXES):
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES.get(match.group(2), 1.0)


def pod_requests(flavor: str, options: KubernetesOptions) -> dict[str, float]:
    """What one batch pod of the flavor asks Kueue for: the main container and Argo's wait
    container (the init container runs before them and asks for no more)."""
    wanted = {**DEFAULT_RESOURCES[flavor], **options.resources.get(flavor, {})}
    names = {"gpu": options.gpu_resource, "qpu": options.qpu_resource}
    requests = {names.get(k, k): quantity(v) for k, v in wanted.items() if quantity(v) > 0}
    for resource, value in options.executor_resources.items():
        requests[resource] = requests.get(resource, 0.0) + quantity(value)
    return requests


def _flavor_quota(cluster_queue: Obj, resource_flavor: str) -> dict[str, float]:
    return {
        r["name"]: quantity(r.get("nominalQuota", 0))
        for group in (cluster_queue.get("spec") or {}).get("resourceGroups") or []
        for f in group.get("flavors") or []
        if f.get("name") == resource_flavor
        for r in f.get("resources") or []
    }


def _flavor_usage(cluster_queue: Obj, resource_flavor: str) -> dict[str, float]:
    return {
        r["name"]: quantity(r.get("total", 0))
        for f in (cluster_queue.get("status") or {}).get("flavorsUsage") or []
        if f.get("name") == resource_flavor
        for r in f.get("resources") or []
    }


def _fits(available: dict[str, float], requests: dict[str, float]) -> int:
    return min(math.floor(max(0.0, available.get(r, 0.0)) / need) for r, need in requests.items())


def flavor_telemetry(
    flavor: Flavor, options: KubernetesOptions, queues: KueueQueues
) -> FlavorTelemetry:
    """One flavor's queue from its LocalQueue, ClusterQueue and pending list."""
    local_queue = options.local_queues.get(flavor.value)
    found = queues.local_queues.get(local_queue or "")
    if found is None:
        return FlavorTelemetry(flavor=flavor, has_queue=False, slots=0,
                               note=f"no LocalQueue {local_queue}")  # fmt: skip
    active = condition(found, "Active")
    if active is not None and active.get("status") == "False":
        return FlavorTelemetry(flavor=flavor, has_queue=False, slots=0,
                               note=f"LocalQueue {local_queue} is not active")  # fmt: skip
    cluster_queue = queues.cluster_queues.get((found.get("spec") or {}).get("clusterQueue", ""))
    if cluster_queue is None:
        return FlavorTelemetry(flavor=flavor, has_queue=True, slots=0, pending=None,
                               note="its ClusterQueue cannot be read")  # fmt: skip
    resource_flavor = DEFAULT_RESOURCE_FLAVORS[flavor.value]
    quota = _flavor_quota(cluster_queue, resource_flavor)
    usage = _flavor_usage(cluster_queue, resource_flavor)
    requests = pod_requests(flavor.value, options)
    slots = _fits(quota, requests)
    free = _fits({r: quota.get(r, 0.0) - usage.get(r, 0.0) for r in requests}, requests)
    status = cluster_queue.get("status") or {}
    ours = len((queues.pending.get(local_queue or "") or {}).get("items") or [])
    return FlavorTelemetry(
        flavor=flavor,
        has_queue=True,
        slots=slots,
        in_use=max(0, slots - free),
        # Everything pending in the ClusterQueue is ahead of a new pod (its flavors share it).
        pending=max(int(status.get("pendingWorkloads") or 0), ours),
        admitted_workloads=int(status.get("admittedWorkloads") or 0),
        note=None if slots else f"ResourceFlavor {resource_flavor} has no quota for one batch pod",
    )


def kueue_snapshot(
    options: KubernetesOptions, queues: KueueQueues, now: datetime | None = None
) -> TelemetrySnapshot:
    """Every flavor's queue as one snapshot; no cap on parallel batches on a cluster."""
    return TelemetrySnapshot(
        backend="kubernetes",
        taken_at=now or datetime.now(timezone.utc),
        flavors={f: flavor_telemetry(f, options, queues) for f in Flavor},
    )


def read_queues(hook: Any, options: KubernetesOptions, namespace: str) -> Call[KueueQueues]:
    """The conversation that reads what :func:`kueue_snapshot` needs; either hook drives it.
    A ClusterQueue or pending list that may not be read is None (positions are a nicety)."""
    from hybrid_provider.hooks.kubernetes import KubernetesApiError
    from hybrid_provider.hooks.kubernetes import KubernetesCalls as calls

    local_queues: dict[str, Obj | None] = {}
    cluster_queues: dict[str, Obj | None] = {}
    pending: dict[str, Obj | None] = {}
    for name in sorted({q for f in Flavor if (q := options.local_queues.get(f.value))}):
        found = yield from calls.get_local_queue.function(hook, name, namespace)
        local_queues[name] = found
        if found is None:
            continue
        pending[name] = yield from calls.pending_workloads.function(hook, namespace, name)
        cluster_queue = (found.get("spec") or {}).get("clusterQueue")
        if cluster_queue and cluster_queue not in cluster_queues:
            try:
                cluster_queues[cluster_queue] = yield from calls.get_cluster_queue.function(
                    hook, cluster_queue
                )
            except KubernetesApiError as exc:
                if exc.status != 403:
                    raise
                cluster_queues[cluster_queue] = None
    return KueueQueues(local_queues, cluster_queues, pending)
