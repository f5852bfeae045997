"""Re-placement on a cluster, the movable workflow and the move conversation.

The real engines run the whole move (``tests/controlplane``: a pod withdrawn, Argo making it
again on the other flavor, Kueue admitting it there); here the workflow's shape and the
conversation's decisions are specified request by request, with a scripted API server.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from k8s_support import argo_crd, make_spec
from schema_validation import validate_against_crd

from hybrid_provider.backends.kubernetes.compile import (
    MOVABLE_TEMPLATE,
    KubernetesOptions,
    batches_of,
    compile_workflow,
    flavor_values,
    movable_of,
)
from hybrid_provider.backends.kubernetes.replace import replace_waiting
from hybrid_provider.backends.kubernetes.status import build_status, recorded_moves
from hybrid_provider.backends.spec import Replacement
from hybrid_provider.backends.status import Admission, BatchPhase, BatchStatus, WorkflowStatus
from hybrid_provider.constants import KUEUE_ADMISSION_GATE
from hybrid_provider.hooks.kubernetes import (
    ArgoKueueHook,
    KubernetesApiError,
    KubernetesCalls,
    Request,
)

OPTIONS = KubernetesOptions(namespace="quantum")
RULE = Replacement(flavors=["cpu", "qpu"], after_s=60)


def movable_workflow(flavors=("cpu", "cpu"), **extra) -> dict:
    spec = make_spec(list(flavors), replacement=RULE, **extra)
    workflow = compile_workflow(spec, OPTIONS)
    workflow["metadata"]["uid"] = "wf-uid"
    return workflow


def test_a_movable_workflow_reads_each_batchs_flavor_from_its_moves_configmap():
    workflow = movable_workflow(["cpu", "qpu"])
    validate_against_crd(workflow, argo_crd())
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    assert set(templates) == {"main", MOVABLE_TEMPLATE}
    template = templates[MOVABLE_TEMPLATE]
    assert template["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == (
        "{{inputs.parameters.queue}}"
    )
    assert template["container"]["image"] == "{{inputs.parameters.image}}"
    assert template["podSpecPatch"] == "{{inputs.parameters.pod-spec-patch}}"
    assert "resources" not in template["container"], "the patch sets them, per flavor"
    tasks = {t["name"]: t for t in templates["main"]["dag"]["tasks"]}
    queue = next(p for p in tasks["batches-qpu"]["arguments"]["parameters"] if p["name"] == "queue")
    assert queue["valueFrom"] == {
        "configMapKeyRef": {"name": f"{workflow['metadata']['name']}-moves",
                            "key": "batch-{{item}}.queue"},
        "default": "hybrid-quantum-qpu",
    }  # fmt: skip
    assert batches_of(workflow) == [(0, "cpu"), (1, "qpu")]
    assert movable_of(workflow).rule == RULE


def test_a_flavors_values_carry_its_resources_and_argos_container_requests():
    values = flavor_values("qpu", OPTIONS)
    patch = json.loads(values["pod-spec-patch"])
    main, wait = patch["containers"]
    assert (
        main["name"] == "main" and main["resources"]["requests"]["quantum.example.com/qpu"] == "1"
    )
    assert wait["name"] == "wait" and wait["resources"]["requests"]["cpu"] == "100m"
    assert values["queue"] == "hybrid-quantum-qpu" and values["flavor"] == "qpu"
    assert flavor_values("cpu", OPTIONS, "team-queue")["queue"] == "team-queue"


def test_a_named_flavor_compiles_as_before_with_nothing_to_move():
    workflow = compile_workflow(make_spec(["cpu", "gpu"]), OPTIONS)
    assert movable_of(workflow) is None
    assert MOVABLE_TEMPLATE not in {t["name"] for t in workflow["spec"]["templates"]}


# --- the conversation ---------------------------------------------------------------------------


def gated_pod(index: int, flavor: str) -> dict:
    return {
        "metadata": {"name": f"hq-pod-{index}", "namespace": "quantum", "uid": f"uid-{index}",
                     "resourceVersion": "41", "creationTimestamp": "2026-12-02T09:00:00Z",
                     "labels": {"hybrid-quantum.io/batch": str(index),
                                "hybrid-quantum.io/flavor": flavor}},
        "spec": {"schedulingGates": [{"name": KUEUE_ADMISSION_GATE}]},
        "status": {"phase": "Pending"},
    }  # fmt: skip


def waiting(index: int, flavor: str, waited_s: float) -> BatchStatus:
    return BatchStatus(index=index, flavor=flavor, phase=BatchPhase.PENDING,
                       admission=Admission.PENDING,
                       pending_since=datetime.now(timezone.utc) - timedelta(seconds=waited_s))  # fmt: skip


def run_status(*batches: BatchStatus) -> WorkflowStatus:
    return WorkflowStatus(name="hq-nightly-submit-0123456789", backend="kubernetes",
                          phase="Running", batches=list(batches))  # fmt: skip


class ScriptedApi(KubernetesCalls):
    """Answers the conversation's requests: Kueue's queues with a free qpu slot, and every
    write recorded; ``refuse_delete`` answers the withdrawal 409 (the pod changed). It holds
    the conversation as the blocking hook does."""

    drive = ArgoKueueHook.drive

    def __init__(self, qpu_free=True, refuse_delete=False):
        self.qpu_free, self.refuse_delete = qpu_free, refuse_delete
        self.writes: list[Request] = []
        self.configmaps: set[str] = set()

    def request(self, request: Request):
        if request.method != "GET":
            self.writes.append(request)
        if request.method == "DELETE" and self.refuse_delete:
            raise KubernetesApiError(409, "Conflict", "the resourceVersion changed")
        if request.method == "POST" and request.path.endswith("/configmaps"):
            if request.body["metadata"]["name"] in self.configmaps:
                raise KubernetesApiError(409, "AlreadyExists", "configmaps exists")
            self.configmaps.add(request.body["metadata"]["name"])
        if "/localqueues/" in request.path and "pendingworkloads" not in request.path:
            name = request.path.rsplit("/", 1)[-1]
            queue = "hybrid-quantum-qpu" if name.endswith("qpu") else "hybrid-quantum-simulators"
            return {"metadata": {"name": name}, "spec": {"clusterQueue": queue}}
        if "/clusterqueues/" in request.path:
            return self.cluster_queue(request.path.rsplit("/", 1)[-1])
        return {"items": []} if request.method == "GET" else {}

    def cluster_queue(self, name: str) -> dict:
        flavor, quota = (
            ("hybrid-quantum-qpu", {"cpu": "4", "memory": "16Gi", "quantum.example.com/qpu": "1"})
            if name.endswith("qpu")
            else ("hybrid-quantum-cpu", {"cpu": "2200m", "memory": "8Gi"})
        )
        used = dict(quota) if name.endswith("qpu") and not self.qpu_free else {"cpu": "2200m"}
        return {
            "spec": {"resourceGroups": [{"flavors": [{"name": flavor, "resources": [
                {"name": r, "nominalQuota": q} for r, q in quota.items()]}]}]},
            "status": {"flavorsUsage": [{"name": flavor, "resources": [
                {"name": r, "total": t} for r, t in used.items()]}]},
        }  # fmt: skip


def move(api: ScriptedApi, status: WorkflowStatus, workflow=None, configmap=None) -> list:
    workflow = workflow or movable_workflow()
    movable = movable_of(workflow)
    pods = [gated_pod(b.index, b.flavor) for b in status.batches]
    return api.drive(replace_waiting(api, workflow, status, pods, configmap, OPTIONS, movable))


def test_a_batch_that_waited_moves_its_configmap_first_then_its_pod_is_withdrawn_as_read():
    api = ScriptedApi()
    moves = move(api, run_status(waiting(0, "cpu", 61), waiting(1, "cpu", 5)))
    assert [(m.batch, m.source, m.target) for m in moves] == [(0, "cpu", "qpu")]
    create, delete = api.writes
    assert (create.method, create.path) == ("POST", "/api/v1/namespaces/quantum/configmaps")
    body = create.body
    assert body["metadata"]["labels"]["workflows.argoproj.io/configmap-type"] == "Parameter"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "wf-uid"
    assert body["data"]["batch-0.flavor"] == "qpu"
    assert body["data"]["batch-0.queue"] == "hybrid-quantum-qpu"
    assert body["data"]["batch-0.moved-from"] == "cpu"
    assert "not admitted after 6" in body["data"]["batch-0.move-message"]
    assert not any(key.startswith("batch-1.") for key in body["data"])
    assert (delete.method, delete.path) == ("DELETE", "/api/v1/namespaces/quantum/pods/hq-pod-0")
    assert delete.body == {"preconditions": {"uid": "uid-0", "resourceVersion": "41"}}


def test_a_pod_admitted_meanwhile_stays_and_its_move_is_undone():
    api = ScriptedApi(refuse_delete=True)
    assert move(api, run_status(waiting(0, "cpu", 61))) == []
    create, delete, exists, undo = api.writes
    assert exists.method == "POST", "the ConfigMap exists now: its data is patched"
    assert undo.method == "PATCH" and undo.content_type == "application/merge-patch+json"
    assert set(undo.body["data"]) == set(create.body["data"])
    assert all(value is None for value in undo.body["data"].values()), "keys removed again"


@pytest.mark.parametrize(
    ("status", "api", "why"),
    [
        (run_status(waiting(0, "cpu", 30)), ScriptedApi(), "not waited long enough"),
        (run_status(waiting(0, "cpu", 61)), ScriptedApi(qpu_free=False), "no free slot"),
        (
            run_status(
                waiting(0, "cpu", 61),
                BatchStatus(
                    index=1, flavor="cpu", phase=BatchPhase.RUNNING, admission=Admission.ADMITTED
                ),  # fmt: skip
            ),
            ScriptedApi(),
            "behind its own run's running batch",
        ),
    ],
)
def test_a_batch_stays_where_it_waits(status, api, why):
    assert move(api, status) == [], why
    assert api.writes == [], why


def test_the_status_shows_a_moved_batch_on_its_new_flavor_and_where_it_was():
    workflow = movable_workflow()
    workflow["status"] = {"phase": "Running", "nodes": {}}
    configmap = {"data": {"batch-0.flavor": "qpu", "batch-0.moved-from": "cpu",
                          "batch-0.move-message": "moved from cpu to qpu: not admitted after "
                                                  "61.0 s while qpu had a free slot"}}  # fmt: skip
    status = build_status(workflow, [gated_pod(0, "qpu")], [], moves=recorded_moves(configmap))
    moved, stayed = status.batches
    assert (moved.flavor, moved.moved_from, moved.reason) == ("qpu", ["cpu"], "Replaced")
    assert moved.message.startswith("moved from cpu to qpu")
    assert (stayed.flavor, stayed.moved_from) == ("cpu", [])
    assert recorded_moves({"data": {"batch-x.flavor": "qpu", "batch-2.flavor": "tpu"}}) == {}
