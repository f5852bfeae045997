"""The Argo/Kueue hooks over real HTTP, through a cncf-kubernetes ``kubernetes`` connection."""

from __future__ import annotations

import asyncio

import pytest
from k8s_support import CASES, K8S_CONN, NAMESPACE

from hybrid_provider.backends.kubernetes.compile import KubernetesOptions, compile_workflow
from hybrid_provider.hooks.kubernetes import (
    ArgoKueueHook,
    AsyncArgoKueueHook,
    KubernetesApiError,
)


def body(name="hq-a", labels=None):
    workflow = compile_workflow(CASES["mixed"], KubernetesOptions(namespace=NAMESPACE))
    workflow["metadata"]["name"] = name
    workflow["metadata"]["labels"].update(labels or {})
    return workflow


def test_workflow_create_get_list_patch(cluster):
    hook = ArgoKueueHook(kubernetes_conn_id=K8S_CONN)
    assert hook.get_namespace() == NAMESPACE
    made = hook.create_workflow(body("hq-a", {"team": "x"}), NAMESPACE)
    assert made["metadata"]["uid"] and made["kind"] == "Workflow"
    hook.create_workflow(body("hq-b"), NAMESPACE)
    with pytest.raises(KubernetesApiError) as caught:
        hook.create_workflow(body("hq-a"), NAMESPACE)
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")
    assert hook.get_workflow("hq-a", NAMESPACE)["metadata"]["uid"] == made["metadata"]["uid"]
    assert hook.get_workflow("hq-zzz", NAMESPACE) is None
    assert [w["metadata"]["name"] for w in hook.list_workflows(NAMESPACE, "team=x")] == ["hq-a"]
    assert len(hook.list_workflows(NAMESPACE, "team in (x,y)")) == 1
    stopped = hook.stop_workflow("hq-a", NAMESPACE)
    assert stopped["spec"]["shutdown"] == "Stop"
    assert stopped["spec"]["entrypoint"] == "main"  # a merge-patch, not a replace


def test_pods_workloads_queues_and_positions(cluster):
    hook = ArgoKueueHook(kubernetes_conn_id=K8S_CONN)
    hook.create_workflow(body("hq-a"), NAMESPACE)
    pods = cluster.argo.start(NAMESPACE, "hq-a")
    listed = hook.list_pods(NAMESPACE, "workflows.argoproj.io/workflow=hq-a")
    assert len(listed) == len(pods) == 4
    assert all(
        p["spec"]["schedulingGates"] == [{"name": "kueue.x-k8s.io/admission"}] for p in listed
    )
    uids = ",".join(p["metadata"]["uid"] for p in listed[:2])
    workloads = hook.list_workloads(NAMESPACE, f"kueue.x-k8s.io/job-uid in ({uids})")
    assert len(workloads) == 2
    assert all(w["metadata"]["name"].startswith("pod-hq-a-") for w in workloads)
    assert hook._kueue_version == "v1beta2"
    pending = hook.pending_workloads(NAMESPACE, "hybrid-quantum")
    assert [i["positionInLocalQueue"] for i in pending["items"]] == [0, 1, 2]
    cluster.server.put(
        "kueue.x-k8s.io",
        "localqueues",
        {"kind": "LocalQueue", "metadata": {"name": "hybrid-quantum", "namespace": NAMESPACE},
         "status": {"pendingWorkloads": 3, "admittedWorkloads": 0}},
    )  # fmt: skip
    cluster.server.put(
        "kueue.x-k8s.io",
        "clusterqueues",
        {"kind": "ClusterQueue", "metadata": {"name": "hybrid-quantum-simulators"},
         "status": {"pendingWorkloads": 3}},
    )  # fmt: skip
    assert hook.get_local_queue("hybrid-quantum", NAMESPACE)["status"]["pendingWorkloads"] == 3
    assert hook.get_local_queue("missing", NAMESPACE) is None
    assert hook.get_cluster_queue("hybrid-quantum-simulators")["status"]["pendingWorkloads"] == 3
    cluster.argo.finish(NAMESPACE, "hq-a", 0)
    failed = cluster.argo.pod_of(NAMESPACE, "hq-a", 1)
    cluster.argo.finish(NAMESPACE, "hq-a", 1, exit_code=2, message="bad manifest")
    assert "bad manifest" in hook.pod_log(failed["metadata"]["name"], NAMESPACE)


def test_kueue_v1beta1_fallback_and_no_visibility_api(old_kueue_cluster):
    cluster = old_kueue_cluster
    hook = ArgoKueueHook(kubernetes_conn_id=K8S_CONN)
    hook.create_workflow(body("hq-a"), NAMESPACE)
    cluster.argo.start(NAMESPACE, "hq-a")
    assert len(hook.list_workloads(NAMESPACE)) == 4
    assert hook._kueue_version == "v1beta1"
    assert hook.pending_workloads(NAMESPACE, "hybrid-quantum") is None
    assert hook.get_local_queue("missing", NAMESPACE) is None


def test_async_hook_reads_and_stops(old_kueue_cluster):
    cluster = old_kueue_cluster
    ArgoKueueHook(kubernetes_conn_id=K8S_CONN).create_workflow(body("hq-a"), NAMESPACE)
    cluster.argo.start(NAMESPACE, "hq-a")

    async def scenario():
        hook = AsyncArgoKueueHook(kubernetes_conn_id=K8S_CONN)
        workflow = await hook.get_workflow("hq-a", NAMESPACE)
        missing = await hook.get_workflow("nope", NAMESPACE)
        pods = await hook.list_pods(NAMESPACE, "workflows.argoproj.io/workflow=hq-a")
        workloads = await hook.list_workloads(NAMESPACE)
        positions = await hook.pending_workloads(NAMESPACE, "hybrid-quantum")
        stopped = await hook.stop_workflow("hq-a", NAMESPACE, how="Terminate")
        return workflow, missing, pods, workloads, positions, stopped, hook._kueue_version

    workflow, missing, pods, workloads, positions, stopped, version = asyncio.run(scenario())
    assert workflow["status"]["phase"] == "Running" and missing is None
    assert len(pods) == len(workloads) == 4 and version == "v1beta1"
    assert positions is None
    assert stopped["spec"]["shutdown"] == "Terminate"


def test_both_hooks_answer_every_read_alike(cluster):
    """One conversation per call, driven blocking or async: the answers cannot drift (a named
    Kueue object that is missing, a missing workflow, positions, events)."""
    ArgoKueueHook(kubernetes_conn_id=K8S_CONN).create_workflow(body("hq-a"), NAMESPACE)
    cluster.argo.start(NAMESPACE, "hq-a")
    reads = [
        ("get_workflow", ("nope", NAMESPACE)),
        ("list_pods", (NAMESPACE, "workflows.argoproj.io/workflow=hq-a")),
        ("list_workloads", (NAMESPACE,)),
        ("get_local_queue", ("missing", NAMESPACE)),
        ("get_cluster_queue", ("hybrid-quantum-simulators",)),
        ("pending_workloads", (NAMESPACE, "hybrid-quantum")),
        ("list_events", (NAMESPACE,)),
    ]
    blocking = ArgoKueueHook(kubernetes_conn_id=K8S_CONN)
    expected = {name: getattr(blocking, name)(*args) for name, args in reads}

    async def read_async():
        hook = AsyncArgoKueueHook(kubernetes_conn_id=K8S_CONN)
        return {name: await getattr(hook, name)(*args) for name, args in reads}

    assert asyncio.run(read_async()) == expected
    assert expected["get_workflow"] is None and expected["get_local_queue"] is None
