"""The Helm chart in charts/hybrid-quantum, rendered by a real Helm.

Checks: `helm lint --strict` and `helm template` for several value sets; every rendered Kueue
and Argo object against the upstream CRD schemas (strictly: unknown fields are errors);
every core object against the Kubernetes schema (kubernetes-validate, strict); the names
against hybrid_provider.constants; pod security and resource requests; values.schema.json
rejecting bad values. No cluster is needed.

Helm comes from `python scripts/install_helm.py` (next to the interpreter) or PATH.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hybrid_provider import constants as C

try:
    from tests.schema_validation import (
        CRDValidationError,
        crd_path,
        find_crd,
        validate_against_crd,
        validate_object,
    )
except ImportError:  # tests/ itself on sys.path
    from schema_validation import (  # type: ignore[no-redef]
        CRDValidationError,
        crd_path,
        find_crd,
        validate_against_crd,
        validate_object,
    )

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "hybrid-quantum"
RELEASE = "hq"
NAMESPACE = "quantum"
K8S_VERSION = "1.33.0"

#: Custom kinds validated against upstream's CRDs (from the pinned modules).
CRD_KINDS = {
    "ResourceFlavor",
    "ClusterQueue",
    "LocalQueue",
    "Cohort",
    "WorkloadPriorityClass",
    "WorkflowTemplate",
}
#: API versions kubernetes-validate knows (the chart renders no other built-in kinds).
CORE_API_VERSIONS = {"v1", "rbac.authorization.k8s.io/v1", "batch/v1", "apps/v1"}
#: Kinds whose schema is neither in the CRD dir nor in kubernetes-validate.
UNCHECKED_KINDS = {"ServiceMonitor"}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu-off": {"kueue": {"flavors": {"gpu": {"enabled": False}}}},
    "qpu-on": {
        "kueue": {"flavors": {"qpu": {"enabled": True}}},
        "qpuCapacityPatch": {"enabled": True},
    },
    "two-tenants": {
        "tenantNamespaces": ["team-a", "team-b"],
        "airflow": {"serviceAccount": {"namespace": "airflow"}},
    },
    "monitoring-on": {
        "monitoring": {
            "exporter": {"enabled": True, "storeUri": "s3://bucket/hq"},
            "serviceMonitor": {"enabled": True},
            "grafanaDashboard": {"enabled": True},
        }
    },
    "kueue-off": {"kueue": {"enabled": False}},
    "everything": {
        "tenantNamespaces": ["team-a", "team-b"],
        "commonLabels": {"team": "quantum"},
        "kueue": {
            "flavors": {
                "qpu": {
                    "enabled": True,
                    "nodeTaints": [
                        {"key": "hybrid-quantum.io/qpu", "value": "true", "effect": "NoSchedule"}
                    ],
                },
            },
            "restrictToTenants": False,
            "clusterQueues": {
                "simulators": {
                    "name": "hybrid-quantum-simulators",
                    "quotas": [
                        {
                            "flavor": "cpu",
                            "cpu": 64,
                            "memory": "256Gi",
                            "borrowingLimit": {"cpu": 16},
                            "lendingLimit": {"memory": "64Gi"},
                        },
                        {"flavor": "gpu", "cpu": "16", "memory": "64Gi", "gpu": 8},
                    ],
                },
            },
        },
        "executor": {"rbac": {"legacyPodAccess": True}, "imagePullSecrets": [{"name": "registry"}]},
        "workflowTemplate": {
            "extraArgs": ["--verbose"],
            "extraEnv": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            "activeDeadlineSeconds": 3600,
            "retry": {"retryFailed": True},
        },
        "monitoring": {
            "exporter": {"enabled": True, "storeUri": "s3://bucket/hq"},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "grafanaDashboard": {"enabled": True},
        },
        "qpuCapacityPatch": {"enabled": True, "capacity": 2},
    },
}


# --------------------------------------------------------------------------- helpers


@cache
def helm_binary() -> str | None:
    beside = Path(sys.executable).parent / "helm"
    if beside.is_file():
        return str(beside)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    found = helm_binary()
    if found is None:
        pytest.fail(
            "helm not found next to the interpreter or on PATH: "
            "run `python scripts/install_helm.py` first",
            pytrace=False,
        )
    return found


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_helm(
    helm: str, command: str, values: dict[str, Any], tmp_dir: Path
) -> subprocess.CompletedProcess:
    values_file = tmp_dir / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    if command == "template":
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)]
    else:
        args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)]
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


@cache
def _render_cached(helm: str, values_json: str, tmp_dir: str) -> tuple[dict[str, Any], ...]:
    done = run_helm(helm, "template", json.loads(values_json), Path(tmp_dir))
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


@pytest.fixture(scope="session")
def render(helm: str, tmp_path_factory: pytest.TempPathFactory):
    tmp_dir = str(tmp_path_factory.mktemp("helm"))

    def _render(values: dict[str, Any] | str = "default") -> list[dict[str, Any]]:
        if isinstance(values, str):
            values = VALUE_SETS[values]
        docs = _render_cached(helm, json.dumps(values, sort_keys=True), tmp_dir)
        return copy.deepcopy(list(docs))

    return _render


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict:
    found = [
        doc
        for doc in of_kind(docs, kind)
        if doc["metadata"]["name"] == name
        and (namespace is None or doc["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"expected one {kind}/{name} in {namespace}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, pod-ish spec) for every WorkflowTemplate template and every Job."""
    out = []
    for wft in of_kind(docs, "WorkflowTemplate"):
        for template in wft["spec"]["templates"]:
            out.append((f"WorkflowTemplate {template['name']}", template))
    for job in of_kind(docs, "Job") + of_kind(docs, "Deployment"):
        out.append((f"{job['kind']} {job['metadata']['name']}", job["spec"]["template"]["spec"]))
    return out


# --------------------------------------------------------------------------- lint and schemas


def test_the_upstream_crds_come_from_the_pinned_modules():
    assert crd_path("kueue/kueue.x-k8s.io_clusterqueues.yaml").is_file()
    assert crd_path("argo/argoproj.io_workflowtemplates.yaml").is_file()


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(helm, tmp_path, value_set):
    done = run_helm(helm, "lint", VALUE_SETS[value_set], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_custom_objects_match_upstream_crds(render, value_set):
    docs = render(value_set)
    checked = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            validate_object(doc)
            checked += 1
    assert checked >= (1 if value_set == "kueue-off" else 7)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_core_objects_match_kubernetes_schema(render, value_set):
    checked = set()
    for doc in render(value_set):
        if doc["kind"] in CRD_KINDS | UNCHECKED_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error}")
        checked.add(doc["kind"])
    assert {"ServiceAccount", "Secret", "Role", "RoleBinding"} <= checked, checked


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_is_checked(render, value_set):
    docs = render(value_set)
    assert docs, "the chart rendered nothing"
    for doc in docs:
        kind = doc["kind"]
        if kind in CRD_KINDS:
            assert find_crd(doc["apiVersion"], kind) is not None, kind
        elif kind not in UNCHECKED_KINDS:
            assert doc["apiVersion"] in CORE_API_VERSIONS, f"unexpected kind {kind}"


def test_kueue_objects_use_v1beta2(render):
    kueue = [doc for doc in render("qpu-on") if doc["apiVersion"].startswith("kueue.x-k8s.io")]
    assert {doc["apiVersion"] for doc in kueue} == {"kueue.x-k8s.io/v1beta2"}
    assert {doc["kind"] for doc in kueue} == {
        "ResourceFlavor",
        "ClusterQueue",
        "LocalQueue",
        "Cohort",
        "WorkloadPriorityClass",
    }


# --------------------------------------------------------------------------- negative checks


def test_crd_check_catches_misspelt_clusterqueue_field(render):
    queue = of_kind(render(), "ClusterQueue")[0]
    validate_object(queue)
    bad = copy.deepcopy(queue)
    bad["spec"]["cohort"] = bad["spec"].pop("cohortName")  # the v1beta1 spelling
    bad["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]["nominalQouta"] = "1"
    with pytest.raises(CRDValidationError) as caught:
        validate_against_crd(bad, crd_path("kueue/kueue.x-k8s.io_clusterqueues.yaml"))
    paths = [path for path, _ in caught.value.errors]
    assert "spec" in paths
    assert "spec.resourceGroups[0].flavors[0].resources[0]" in paths
    assert "'cohort' was unexpected" in str(caught.value)


def test_crd_check_catches_wrong_type_and_enum(render):
    queue = of_kind(render(), "ClusterQueue")[0]
    queue["spec"]["queueingStrategy"] = "Fastest"
    queue["spec"]["resourceGroups"][0]["coveredResources"] = "cpu"
    with pytest.raises(CRDValidationError) as caught:
        validate_object(queue)
    paths = {path for path, _ in caught.value.errors}
    assert {"spec.queueingStrategy", "spec.resourceGroups[0].coveredResources"} <= paths


def test_crd_check_catches_unknown_workflow_template_field(render):
    wft = of_kind(render(), "WorkflowTemplate")[0]
    wft["spec"]["templates"][0]["container"]["imagePulPolicy"] = "Always"
    wft["metadata"]["labelz"] = {}
    with pytest.raises(CRDValidationError) as caught:
        validate_object(wft)
    paths = {path for path, _ in caught.value.errors}
    assert {"spec.templates[0].container", "metadata"} <= paths


def test_crd_check_rejects_unknown_version_and_kind(render):
    queue = of_kind(render(), "LocalQueue")[0]
    path = crd_path("kueue/kueue.x-k8s.io_localqueues.yaml")
    with pytest.raises(CRDValidationError, match="v9"):
        validate_against_crd({**queue, "apiVersion": "kueue.x-k8s.io/v9"}, path)
    with pytest.raises(CRDValidationError, match="ClusterQueue"):
        validate_against_crd({**queue, "kind": "ClusterQueue"}, path)
    with pytest.raises(LookupError):
        validate_object({**queue, "apiVersion": "example.com/v1"})


def _bad_quota_values() -> dict[str, Any]:
    queues = copy.deepcopy(
        yaml.safe_load((CHART / "values.yaml").read_text())["kueue"]["clusterQueues"]
    )
    queues["simulators"]["quotas"][0]["cpu"] = "-4"
    return {"kueue": {"clusterQueues": queues}}


BAD_VALUES = {
    "negative-quota": _bad_quota_values(),
    "negative-numeric-quota": {"workflowTemplate": {"executorResources": {"cpu": -1}}},
    "unknown-top-level-key": {"kueueu": {"enabled": True}},
    "flavor-name-not-dns-label": {"kueue": {"flavors": {"gpu": {"name": "GPU_Flavor"}}}},
    "flavor-name-too-long": {"kueue": {"flavors": {"cpu": {"name": "a" * 64}}}},
    "unknown-flavor-key": {"kueue": {"flavors": {"cpu": {"nodeLabel": {"a": "b"}}}}},
    "bad-preemption-policy": {"kueue": {"preemption": {"withinClusterQueue": "Always"}}},
    "priority-not-integer": {
        "kueue": {"priorityClasses": {"nightly": {"name": "n", "value": "high"}}},
    },
    "bad-taint-effect": {
        "kueue": {"flavors": {"qpu": {"nodeTaints": [{"key": "k", "effect": "Sometimes"}]}}},
    },
    "exporter-without-store": {"monitoring": {"exporter": {"enabled": True}}},
    "exporter-store-not-a-uri": {
        "monitoring": {"exporter": {"enabled": True, "storeUri": "/data/hq"}},
    },
    "servicemonitor-port-is-the-exporters": {"monitoring": {"serviceMonitor": {"port": 9090}}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_values_schema_rejects_bad_values(helm, tmp_path, case):
    for command in ("template", "lint"):
        done = run_helm(helm, command, BAD_VALUES[case], tmp_path)
        assert done.returncode != 0, f"helm {command} accepted {case}"
        assert "schema" in (done.stdout + done.stderr), done.stdout + done.stderr


def test_borrowing_without_reclaim_is_refused(helm, tmp_path):
    values = {"kueue": {"preemption": {"reclaimWithinCohort": "Never"}}}
    done = run_helm(helm, "template", values, tmp_path)
    assert done.returncode != 0
    assert "borrowWithinCohort" in done.stderr


# --------------------------------------------------------------------------- names


def test_values_yaml_defaults_equal_constants():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    kueue = values["kueue"]
    assert {k: f["name"] for k, f in kueue["flavors"].items()} == C.DEFAULT_RESOURCE_FLAVORS
    assert {k: q["name"] for k, q in kueue["clusterQueues"].items()} == C.DEFAULT_CLUSTER_QUEUES
    assert kueue["cohort"]["name"] == C.DEFAULT_COHORT
    assert {k: (p["name"], p["value"]) for k, p in kueue["priorityClasses"].items()} == (
        C.PRIORITY_CLASSES
    )
    assert values["resources"] == {"gpu": C.GPU_RESOURCE, "qpu": C.DEFAULT_QPU_RESOURCE}
    assert values["store"]["secretName"] == C.STORE_SECRET
    assert values["executor"]["serviceAccount"]["name"] == C.EXECUTOR_SERVICE_ACCOUNT
    assert values["airflow"]["serviceAccount"]["name"] == C.AIRFLOW_SERVICE_ACCOUNT
    assert values["workflowTemplate"]["name"] == C.BATCH_WORKFLOW_TEMPLATE
    image = values["executor"]["image"]
    assert f"{image['repository']}:{image['tag']}" == C.DEFAULT_EXECUTOR_IMAGE
    assert f"{image['repository']}:{image['gpuTag']}" == C.DEFAULT_EXECUTOR_GPU_IMAGE


def test_rendered_names_equal_constants(render):
    docs = render("qpu-on")
    assert {d["metadata"]["name"] for d in of_kind(docs, "ResourceFlavor")} == set(
        C.DEFAULT_RESOURCE_FLAVORS.values()
    )
    queues = {d["metadata"]["name"]: d for d in of_kind(docs, "ClusterQueue")}
    assert set(queues) == set(C.DEFAULT_CLUSTER_QUEUES.values())
    assert {q["spec"]["cohortName"] for q in queues.values()} == {C.DEFAULT_COHORT}
    one(docs, "Cohort", C.DEFAULT_COHORT)
    priorities = {d["metadata"]["name"]: d["value"] for d in of_kind(docs, "WorkloadPriorityClass")}
    assert priorities == dict(C.PRIORITY_CLASSES.values())
    assert C.PRIORITY_CLASSES["nightly"][1] < C.PRIORITY_CLASSES["interactive"][1]

    # Each flavor's LocalQueue exists and leads to a ClusterQueue that has that flavor.
    local = {d["metadata"]["name"]: d for d in of_kind(docs, "LocalQueue")}
    for flavor, lq_name in C.DEFAULT_LOCAL_QUEUES.items():
        assert lq_name in local, f"no LocalQueue {lq_name} for flavor {flavor}"
        cq = queues[local[lq_name]["spec"]["clusterQueue"]]
        flavors = {f["name"] for rg in cq["spec"]["resourceGroups"] for f in rg["flavors"]}
        assert C.DEFAULT_RESOURCE_FLAVORS[flavor] in flavors
    assert (
        local[C.DEFAULT_LOCAL_QUEUES["qpu"]]["spec"]["clusterQueue"]
        == (C.DEFAULT_CLUSTER_QUEUES["qpu"])
    )

    covered = {
        r
        for q in queues.values()
        for rg in q["spec"]["resourceGroups"]
        for r in rg["coveredResources"]
    }
    assert {C.GPU_RESOURCE, C.DEFAULT_QPU_RESOURCE} <= covered

    one(docs, "ServiceAccount", C.EXECUTOR_SERVICE_ACCOUNT, NAMESPACE)
    one(docs, "ServiceAccount", C.AIRFLOW_SERVICE_ACCOUNT, NAMESPACE)
    wft = one(docs, "WorkflowTemplate", C.BATCH_WORKFLOW_TEMPLATE, NAMESPACE)
    assert wft["spec"]["serviceAccountName"] == C.EXECUTOR_SERVICE_ACCOUNT
    templates = {t["name"]: t for t in wft["spec"]["templates"]}
    assert set(templates) == {"run-batch", "run-batch-gpu", "run-batch-qpu"}
    for template in templates.values():
        assert template["executor"]["serviceAccountName"] == C.EXECUTOR_SERVICE_ACCOUNT
        env_from = template["container"]["envFrom"]
        assert [e["secretRef"]["name"] for e in env_from] == [C.STORE_SECRET]
        labels = template["metadata"]["labels"]
        assert C.KUEUE_QUEUE_NAME_LABEL in labels and C.KUEUE_PRIORITY_CLASS_LABEL in labels
    defaults = {p["name"]: p.get("value") for p in templates["run-batch"]["inputs"]["parameters"]}
    assert defaults["queue-name"] == C.DEFAULT_LOCAL_QUEUES["cpu"]
    assert defaults["priority-class"] == C.PRIORITY_CLASSES["nightly"][0]
    assert defaults["image"] == C.DEFAULT_EXECUTOR_IMAGE
    gpu = {p["name"]: p.get("value") for p in templates["run-batch-gpu"]["inputs"]["parameters"]}
    assert gpu["image"] == C.DEFAULT_EXECUTOR_GPU_IMAGE
    assert gpu["queue-name"] == C.DEFAULT_LOCAL_QUEUES["gpu"]
    qpu = {p["name"]: p.get("value") for p in templates["run-batch-qpu"]["inputs"]["parameters"]}
    assert qpu["queue-name"] == C.DEFAULT_LOCAL_QUEUES["qpu"]
    assert C.GPU_RESOURCE in templates["run-batch-gpu"]["podSpecPatch"]
    assert C.DEFAULT_QPU_RESOURCE in templates["run-batch-qpu"]["podSpecPatch"]
    job = of_kind(docs, "Job")[0]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["QPU_RESOURCE"] == C.DEFAULT_QPU_RESOURCE


# --------------------------------------------------------------------------- behaviour of the chart


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_clusterqueues_are_consistent(render, value_set):
    docs = render(value_set)
    flavors = {d["metadata"]["name"] for d in of_kind(docs, "ResourceFlavor")}
    queues = {d["metadata"]["name"] for d in of_kind(docs, "ClusterQueue")}
    for cq in of_kind(docs, "ClusterQueue"):
        seen_resources: set[str] = set()
        for group in cq["spec"]["resourceGroups"]:
            covered = group["coveredResources"]
            assert not seen_resources & set(covered), "a resource in two groups"
            seen_resources |= set(covered)
            for flavor in group["flavors"]:
                assert flavor["name"] in flavors, f"{flavor['name']} is not rendered"
                # Kueue's CEL rule (not evaluated by the schema check).
                assert [r["name"] for r in flavor["resources"]] == covered
        preemption = cq["spec"]["preemption"]
        assert not (
            preemption["reclaimWithinCohort"] == "Never"
            and preemption["borrowWithinCohort"]["policy"] != "Never"
        )
    for lq in of_kind(docs, "LocalQueue"):
        assert lq["spec"]["clusterQueue"] in queues


def test_kueue_off_renders_no_kueue_objects(render):
    docs = render("kueue-off")
    assert not [d for d in docs if d["apiVersion"].startswith("kueue.x-k8s.io")]
    one(docs, "WorkflowTemplate", C.BATCH_WORKFLOW_TEMPLATE, NAMESPACE)


def test_local_queue_with_unknown_cluster_queue_is_refused(helm, tmp_path):
    values = {"kueue": {"localQueues": {"lost": "nowhere"}}}
    done = run_helm(helm, "template", values, tmp_path)
    assert done.returncode != 0
    assert "nowhere" in done.stderr


def test_the_executor_token_secret_argo_mounts_is_created_with_the_service_account(render):
    """Argo mounts ``<executor SA>.service-account-token`` into every batch pod; since
    Kubernetes 1.24 nothing creates it, and without it no pod starts (FailedMount)."""
    docs = render("two-tenants")
    secrets = of_kind(docs, "Secret")
    assert {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets} == {
        (ns, f"{C.EXECUTOR_SERVICE_ACCOUNT}.service-account-token") for ns in ("team-a", "team-b")
    }
    for secret in secrets:
        assert secret["type"] == "kubernetes.io/service-account-token"
        assert secret["metadata"]["annotations"] == {
            "kubernetes.io/service-account.name": C.EXECUTOR_SERVICE_ACCOUNT
        }


def test_retry_backoff_caps_each_wait_and_sets_no_limit_on_the_whole_batch(render):
    """``backoff.maxDuration`` counts from the first attempt (queue time included): a batch
    preempted after a long wait would never be retried. Only ``cap`` bounds each wait."""
    for template in of_kind(render(), "WorkflowTemplate")[0]["spec"]["templates"]:
        backoff = template["retryStrategy"]["backoff"]
        assert backoff["cap"] == "10m"
        assert "maxDuration" not in backoff


def test_gpu_off_removes_gpu_flavor_and_resource(render):
    docs = render("gpu-off")
    assert C.DEFAULT_RESOURCE_FLAVORS["gpu"] not in {
        d["metadata"]["name"] for d in of_kind(docs, "ResourceFlavor")
    }
    (cq,) = of_kind(docs, "ClusterQueue")
    assert cq["spec"]["resourceGroups"][0]["coveredResources"] == ["cpu", "memory"]
    wft = of_kind(docs, "WorkflowTemplate")[0]
    assert [t["name"] for t in wft["spec"]["templates"]] == ["run-batch"]


def test_default_has_no_qpu_and_no_optional_pieces(render):
    docs = render()
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"Job", "ServiceMonitor", "Service", "ConfigMap"}
    assert C.DEFAULT_CLUSTER_QUEUES["qpu"] not in {
        d["metadata"]["name"] for d in of_kind(docs, "ClusterQueue")
    }
    assert C.DEFAULT_LOCAL_QUEUES["qpu"] not in {
        d["metadata"]["name"] for d in of_kind(docs, "LocalQueue")
    }


def test_cpu_flavor_has_no_gpu_quota(render):
    cq = one(render(), "ClusterQueue", C.DEFAULT_CLUSTER_QUEUES["simulators"])
    (group,) = cq["spec"]["resourceGroups"]
    quotas = {
        f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]} for f in group["flavors"]
    }
    assert quotas[C.DEFAULT_RESOURCE_FLAVORS["cpu"]][C.GPU_RESOURCE] == "0"
    assert quotas[C.DEFAULT_RESOURCE_FLAVORS["gpu"]][C.GPU_RESOURCE] == "4"


def test_quantities_render_without_float_exponent(render):
    values = {
        "kueue": {
            "clusterQueues": {
                "simulators": {
                    "name": "s",
                    "quotas": [{"flavor": "cpu", "cpu": 1000000, "memory": 0.5}],
                }
            }
        }
    }
    cq = one(render(values), "ClusterQueue", "s")
    resources = cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert [r["nominalQuota"] for r in resources] == ["1000000", "0.5"]


def test_two_tenants_get_their_own_namespaced_objects(render):
    docs = render("two-tenants")
    for ns in ("team-a", "team-b"):
        one(docs, "LocalQueue", C.DEFAULT_LOCAL_QUEUES["cpu"], ns)
        one(docs, "ServiceAccount", C.EXECUTOR_SERVICE_ACCOUNT, ns)
        one(docs, "Role", C.EXECUTOR_SERVICE_ACCOUNT, ns)
        one(docs, "WorkflowTemplate", C.BATCH_WORKFLOW_TEMPLATE, ns)
        binding = one(docs, "RoleBinding", C.AIRFLOW_SERVICE_ACCOUNT, ns)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": C.AIRFLOW_SERVICE_ACCOUNT, "namespace": "airflow"}
        ]
    one(docs, "ServiceAccount", C.AIRFLOW_SERVICE_ACCOUNT, "airflow")
    (cq,) = of_kind(docs, "ClusterQueue")
    (expression,) = cq["spec"]["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["team-a", "team-b"]


def test_monitoring_runs_the_exporter_and_scrapes_it(render):
    docs = render("monitoring-on")
    (deployment,) = of_kind(docs, "Deployment")
    (service,) = of_kind(docs, "Service")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    for key, value in service["spec"]["selector"].items():
        assert pod["metadata"]["labels"][key] == value
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["hybrid-quantum"]
    assert container["args"] == ["metrics", "--store", "s3://bucket/hq", "--port", "9090"]
    assert container["ports"][0]["containerPort"] == 9090 == service["spec"]["ports"][0]["port"]
    assert monitor["spec"]["endpoints"][0]["port"] == container["ports"][0]["name"]
    assert container["envFrom"][0]["secretRef"]["name"] == "hybrid-quantum-store"
    # the store is the exporter's source: batch pods serve nothing and are told no port
    template = of_kind(docs, "WorkflowTemplate")[0]["spec"]["templates"][0]
    assert "ports" not in template["container"]
    assert all("METRICS" not in env["name"] for env in template["container"]["env"])


def test_the_exporter_has_the_store_secret_in_every_tenant(render):
    docs = render("everything")
    for ns in ("team-a", "team-b"):
        one(docs, "Deployment", f"{RELEASE}-hybrid-quantum-metrics", ns)
        one(docs, "ServiceMonitor", f"{RELEASE}-hybrid-quantum-metrics", ns)


def test_a_servicemonitor_without_the_exporter_is_refused(helm, tmp_path):
    values = {"monitoring": {"serviceMonitor": {"enabled": True}}}
    done = run_helm(helm, "template", values, tmp_path)
    assert done.returncode != 0
    assert "monitoring.exporter.enabled" in done.stderr


def test_the_dashboard_ships_and_queries_only_exported_metrics(render):
    from hybrid_provider.metrics import metric_names

    (config_map,) = of_kind(render("monitoring-on"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["hybrid-quantum.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "hybrid-quantum.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bhybrid_quantum_\w+", target["expr"])
    }
    exported = metric_names()
    assert queried and queried <= exported, queried - exported
    # every family the exporter serves is on the dashboard
    stems = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in queried}
    assert {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported} <= stems


# --------------------------------------------------------------------------- security and RBAC


@pytest.mark.parametrize("value_set", ["default", "everything"])
def test_pods_are_locked_down_and_request_resources(render, value_set):
    specs = pod_specs(render(value_set))
    assert specs
    for label, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, label
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, label
        containers = [spec["container"]] if "container" in spec else spec["containers"]
        if "podSpecPatch" in spec:  # Argo's init and wait containers, and the main one's sizes
            patch = json.loads(spec["podSpecPatch"])
            containers += patch["initContainers"] + [
                c for c in patch["containers"] if c["name"] != "main"
            ]
            assert {c["name"] for c in patch["initContainers"]} == {"init"}, label
            assert {c["name"] for c in patch["containers"]} == {"wait", "main"}, label
            main = next(c for c in patch["containers"] if c["name"] == "main")
            assert set(main["resources"]["requests"]) >= {"cpu", "memory"}, label
        for container in containers:
            where = f"{label} container {container.get('name', 'main')}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            requests = container["resources"]["requests"]
            assert requests.get("cpu") and requests.get("memory"), where


def test_batch_template_runs_the_cli(render):
    template = of_kind(render(), "WorkflowTemplate")[0]["spec"]["templates"][0]
    assert template["name"] == "run-batch"
    names = [p["name"] for p in template["inputs"]["parameters"]]
    assert names[:2] == ["manifest-uri", "batch"]
    container = template["container"]
    command = container["command"] + container["args"]
    assert command[:5] == [
        "hybrid-quantum",
        "run-batch",
        "{{inputs.parameters.manifest-uri}}",
        "--batch",
        "{{inputs.parameters.batch}}",
    ]
    assert template["automountServiceAccountToken"] is False
    assert "pod deleted" in template["retryStrategy"]["expression"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}


def test_store_credentials_are_only_referenced(render):
    """The chart's only Secrets are the executor token Secrets, which it leaves empty for the
    token controller to fill; store credentials are never rendered."""
    docs = render("everything")
    for secret in of_kind(docs, "Secret"):
        assert secret["type"] == "kubernetes.io/service-account-token"
        assert not secret.get("data") and not secret.get("stringData")
    text = yaml.safe_dump_all(docs)
    for forbidden in ("AWS_SECRET", "secret_access_key", "password"):
        assert forbidden not in text


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_executor_role_is_minimal(render):
    role = one(render(), "Role", C.EXECUTOR_SERVICE_ACCOUNT, NAMESPACE)
    assert _rules(role) == {
        ("argoproj.io", "workflowtaskresults", "create"),
        ("argoproj.io", "workflowtaskresults", "patch"),
    }
    legacy = one(render("everything"), "Role", C.EXECUTOR_SERVICE_ACCOUNT, "team-a")
    assert ("", "pods", "patch") in _rules(legacy)


def test_airflow_rbac(render):
    docs = render()
    rules = _rules(one(docs, "Role", C.AIRFLOW_SERVICE_ACCOUNT, NAMESPACE))
    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        assert ("argoproj.io", "workflows", verb) in rules
    for resource in ("pods", "pods/log"):
        assert {("", resource, v) for v in ("get", "list", "watch")} <= rules
    for resource in ("workloads", "localqueues"):
        assert {("kueue.x-k8s.io", resource, v) for v in ("get", "list", "watch")} <= rules
    assert ("visibility.kueue.x-k8s.io", "localqueues/pendingworkloads", "get") in rules
    # re-placement withdraws pending pods and records moves; nothing else is written
    assert ("", "pods", "delete") in rules and ("", "pods", "patch") not in rules
    assert {("", "configmaps", v) for v in ("get", "create", "patch")} <= rules
    assert ("", "configmaps", "delete") not in rules  # the workflow's owner reference does it
    assert not any(verb in {"*", "escalate", "bind"} for _, _, verb in rules)
    (cluster_role,) = of_kind(docs, "ClusterRole")
    assert _rules(cluster_role) == {
        ("kueue.x-k8s.io", "clusterqueues", v) for v in ("get", "list", "watch")
    }
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == C.AIRFLOW_SERVICE_ACCOUNT


# --------------------------------------------------------------------------- install script


def test_install_helm_script_is_idempotent(helm):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_helm.py"), str(Path(helm).parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(Path(helm).parent / "helm")
    assert "already works" in done.stderr


def test_a_workflow_referencing_the_template_validates():
    """The shape the operators generate: a Workflow fanning out over batches via templateRef."""
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "cut-", "namespace": NAMESPACE},
        "spec": {
            "entrypoint": "main",
            "serviceAccountName": C.EXECUTOR_SERVICE_ACCOUNT,
            "podMetadata": {"labels": {C.KUEUE_QUEUE_NAME_LABEL: C.DEFAULT_LOCAL_QUEUES["cpu"]}},
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {
                                "name": "batch",
                                "templateRef": {
                                    "name": C.BATCH_WORKFLOW_TEMPLATE,
                                    "template": "run-batch",
                                },
                                "arguments": {
                                    "parameters": [
                                        {"name": "manifest-uri", "value": "s3://b/j/manifest.json"},
                                        {"name": "batch", "value": "{{item}}"},
                                    ]
                                },
                                "withItems": [0, 1, 2],
                            }
                        ]
                    },
                }
            ],
        },
    }
    path = validate_object(workflow)
    assert path.name == "argoproj.io_workflows.yaml"
    workflow["spec"]["templates"][0]["dag"]["tasks"][0]["templateref"] = {}
    with pytest.raises(CRDValidationError, match=r"spec\.templates\[0\]\.dag\.tasks\[0\]"):
        validate_object(workflow)
