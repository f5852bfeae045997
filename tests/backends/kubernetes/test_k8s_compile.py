"""Workflow compilation: shape, labels, resources, retry, size, and the upstream CRD schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_support import CASES, argo_crd, make_spec, write_fake_manifest
from schema_validation import CRDValidationError, validate_against_crd

from hybrid_provider import constants as C
from hybrid_provider.backends.kubernetes.compile import (
    RETRY_EXPRESSION,
    KubernetesOptions,
    batches_of,
    compile_workflow,
)
from hybrid_provider.core.errors import InputError

REPO = Path(__file__).resolve().parents[3]


def templates(workflow):
    return {t["name"]: t for t in workflow["spec"]["templates"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_generated_workflow_matches_the_argo_crd(case):
    workflow = compile_workflow(CASES[case], KubernetesOptions(namespace="quantum"))
    validate_against_crd(workflow, argo_crd())
    assert workflow["metadata"]["namespace"] == "quantum"


def test_the_validator_really_fails_on_a_wrong_field():
    workflow = compile_workflow(CASES["mixed"])
    workflow["spec"]["templates"][0]["retryStrategy"]["limits"] = 3
    with pytest.raises(CRDValidationError, match=r"retryStrategy"):
        validate_against_crd(workflow, argo_crd())
    workflow = compile_workflow(CASES["plain"])
    workflow["spec"]["podGC"]["strategy"] = 7
    with pytest.raises(CRDValidationError, match=r"spec\.podGC\.strategy"):
        validate_against_crd(workflow, argo_crd())


def test_fan_out_over_batches_with_one_template_per_flavor():
    workflow = compile_workflow(CASES["mixed"])
    main = templates(workflow)["main"]
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    assert set(tasks) == {"batches-cpu", "batches-gpu", "batches-qpu"}
    assert tasks["batches-cpu"]["withItems"] == [0, 3]
    assert tasks["batches-cpu"]["arguments"]["parameters"] == [
        {"name": "batch", "value": "{{item}}"}
    ]
    assert set(templates(workflow)) == {"main", "run-batch-cpu", "run-batch-gpu", "run-batch-qpu"}
    assert batches_of(workflow) == [(0, "cpu"), (1, "gpu"), (2, "qpu"), (3, "cpu")]


def test_100000_subexperiments_in_64_batches_stay_small():
    spec = make_spec(["cpu", "gpu", "qpu", "cpu"] * 16, per_batch=100_000 // 64 + 1)
    size = len(json.dumps(compile_workflow(spec)))
    assert size < 100_000, size
    same_batches_fewer_experiments = make_spec(["cpu", "gpu", "qpu", "cpu"] * 16, per_batch=1)
    assert len(json.dumps(compile_workflow(same_batches_fewer_experiments))) == size


def test_resources_per_flavor():
    workflow = compile_workflow(CASES["mixed"], KubernetesOptions(qpu_resource="vendor.io/qpu"))
    res = {
        n: t["container"]["resources"] for n, t in templates(workflow).items() if "container" in t
    }
    assert res["run-batch-cpu"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert C.GPU_RESOURCE not in res["run-batch-cpu"]["limits"]
    assert res["run-batch-gpu"]["requests"][C.GPU_RESOURCE] == "1"
    assert res["run-batch-gpu"]["limits"][C.GPU_RESOURCE] == "1"
    assert res["run-batch-qpu"]["requests"]["vendor.io/qpu"] == "1"
    assert res["run-batch-qpu"]["limits"]["vendor.io/qpu"] == "1"
    images = {
        n: t["container"]["image"] for n, t in templates(workflow).items() if "container" in t
    }
    assert images["run-batch-gpu"] == C.DEFAULT_EXECUTOR_GPU_IMAGE
    assert images["run-batch-cpu"] == images["run-batch-qpu"] == C.DEFAULT_EXECUTOR_IMAGE


def test_fractional_qpu_count_is_refused():
    with pytest.raises(InputError, match="whole number"):
        compile_workflow(CASES["qpu"], KubernetesOptions(resources={"qpu": {"qpu": "0.5"}}))


def test_one_queue_goes_in_pod_metadata_several_go_per_template():
    plain = compile_workflow(CASES["gpu"])
    pod_labels = plain["spec"]["podMetadata"]["labels"]
    assert pod_labels[C.KUEUE_QUEUE_NAME_LABEL] == "hybrid-quantum"
    assert pod_labels[C.KUEUE_PRIORITY_CLASS_LABEL] == "hybrid-quantum-interactive"
    assert pod_labels[C.DAG_ID_LABEL] == "nightly" and pod_labels[C.JOB_LABEL] == "job-1"
    assert C.KUEUE_QUEUE_NAME_LABEL not in templates(plain)["run-batch-gpu"]["metadata"]["labels"]

    mixed = compile_workflow(CASES["mixed"])
    assert C.KUEUE_QUEUE_NAME_LABEL not in mixed["spec"]["podMetadata"]["labels"]
    per_template = {
        n: t["metadata"]["labels"][C.KUEUE_QUEUE_NAME_LABEL]
        for n, t in templates(mixed).items()
        if "container" in t
    }
    assert per_template == {
        "run-batch-cpu": "hybrid-quantum",
        "run-batch-gpu": "hybrid-quantum",
        "run-batch-qpu": "hybrid-quantum-qpu",
    }
    labels = templates(mixed)["run-batch-cpu"]["metadata"]["labels"]
    assert labels[C.BATCH_LABEL] == "{{inputs.parameters.batch}}"
    assert labels[C.FLAVOR_LABEL] == "cpu"


def test_no_priority_label_without_a_priority_class():
    assert (
        C.KUEUE_PRIORITY_CLASS_LABEL
        not in compile_workflow(CASES["plain"])["spec"]["podMetadata"]["labels"]
    )


def test_retry_deadline_gc_and_ttl():
    workflow = compile_workflow(CASES["plain"], KubernetesOptions(active_deadline_seconds=900))
    template = templates(workflow)["run-batch-cpu"]
    retry = template["retryStrategy"]
    assert retry["retryPolicy"] == "Always" and retry["expression"] == RETRY_EXPRESSION
    assert (
        "pod deleted" in RETRY_EXPRESSION and "asInt(lastRetry.exitCode) != 2" in RETRY_EXPRESSION
    )
    assert template["activeDeadlineSeconds"] == 900  # per batch attempt: queue time is not counted
    assert "activeDeadlineSeconds" not in workflow["spec"]
    assert workflow["spec"]["podGC"] == {"strategy": "OnPodSuccess"}
    assert workflow["spec"]["ttlStrategy"]["secondsAfterCompletion"] > 0


def test_pods_run_the_cli_on_their_batch_with_the_execution_options():
    args = templates(compile_workflow(CASES["qpu"]))["run-batch-qpu"]["container"]["args"]
    assert args[:4] == [
        "run-batch",
        "s3://bucket/jobs/job-1/manifest.json",
        "--batch",
        "{{inputs.parameters.batch}}",
    ]
    assert "--shots=4096" in args and "--seed=1234" in args
    from hybrid_provider.cli import build_parser

    parsed = build_parser().parse_args(
        [a.replace("{{inputs.parameters.batch}}", "3") for a in args]
    )
    assert (parsed.batch, parsed.shots, parsed.exact, parsed.device) == (3, 4096, False, "auto")


def test_store_credentials_only_by_secret_reference():
    workflow = compile_workflow(CASES["mixed"])
    for template in templates(workflow).values():
        if "container" not in template:
            continue
        container = template["container"]
        assert container["envFrom"] == [
            {
                "prefix": "HYBRID_QUANTUM_STORE_",
                "secretRef": {"name": C.STORE_SECRET, "optional": False},
            }
        ]
        for variable in container["env"]:  # literals, or the pod's own fields: no secret refs
            assert "SECRET" not in variable["name"]
            assert "value" in variable or set(variable["valueFrom"]) == {"fieldRef"}
        assert template["automountServiceAccountToken"] is False
    assert workflow["spec"]["serviceAccountName"] == C.EXECUTOR_SERVICE_ACCOUNT


def test_each_batch_pod_is_told_what_its_record_names_as_where_it_ran():
    """Pod, namespace, uid and node from the downward API; workflow from Argo; flavor, image."""
    workflow = compile_workflow(CASES["mixed"])
    for template in templates(workflow).values():
        if "container" not in template:
            continue
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in template["container"]["env"]}
        assert env["HYBRID_QUANTUM_WORKFLOW"] == "{{workflow.name}}"
        assert env["HYBRID_QUANTUM_FLAVOR"] == template["metadata"]["labels"][C.FLAVOR_LABEL]
        assert env["HYBRID_QUANTUM_IMAGE"] == template["container"]["image"]
        assert env["HYBRID_QUANTUM_POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
        assert env["HYBRID_QUANTUM_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_dry_run_cli_prints_the_workflow(tmp_path):
    uri = write_fake_manifest(tmp_path, num_batches=3)
    done = subprocess.run(
        [sys.executable, "-m", "hybrid_provider.cli", "workflow", uri, "--flavor", "qpu",
         "--namespace", "team-a", "--image", "registry.example/hq:1", "--shots", "100"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    workflow = yaml.safe_load(done.stdout)
    validate_against_crd(workflow, argo_crd())
    assert workflow["metadata"]["namespace"] == "team-a"
    qpu = templates(workflow)["run-batch-qpu"]
    assert qpu["container"]["image"] == "registry.example/hq:1"
    assert "--shots=100" in qpu["container"]["args"]
    assert batches_of(workflow) == [(0, "qpu"), (1, "qpu"), (2, "qpu")]
    bad = subprocess.run(
        [sys.executable, "-m", "hybrid_provider.cli", "workflow", str(tmp_path / "missing.json")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert bad.returncode == 2 and "error" in bad.stderr


def _helm() -> str | None:
    local = Path(sys.executable).parent / "helm"
    return str(local) if local.exists() else shutil.which("helm")


@pytest.mark.skipif(_helm() is None, reason="helm not installed")
def test_generated_pod_template_agrees_with_the_chart():
    rendered = subprocess.run(
        [_helm(), "template", "hq", str(REPO / "charts" / "hybrid-quantum"), "-n", "quantum",
         "--set", "kueue.flavors.qpu.enabled=true"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    chart = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "WorkflowTemplate")
    chart_templates = {t["name"]: t for t in chart["spec"]["templates"]}
    ours = templates(compile_workflow(CASES["mixed"]))
    for flavor, chart_name in [
        ("cpu", "run-batch"),
        ("gpu", "run-batch-gpu"),
        ("qpu", "run-batch-qpu"),
    ]:
        mine, theirs = ours[f"run-batch-{flavor}"], chart_templates[chart_name]
        assert mine["container"]["command"] == theirs["container"]["command"]
        assert mine["container"]["args"][0] == theirs["container"]["args"][0] == "run-batch"
        assert mine["container"]["args"][2] == theirs["container"]["args"][2] == "--batch"
        assert mine["container"]["envFrom"] == theirs["container"]["envFrom"]
        assert mine["container"]["securityContext"] == theirs["container"]["securityContext"]
        assert mine["container"]["volumeMounts"] == theirs["container"]["volumeMounts"]
        assert mine["securityContext"] == theirs["securityContext"]
        assert mine["executor"] == theirs["executor"]
        assert mine["automountServiceAccountToken"] == theirs["automountServiceAccountToken"]
        assert (
            json.loads(mine["podSpecPatch"])["initContainers"]
            == json.loads(theirs["podSpecPatch"])["initContainers"]
        )
        assert mine["retryStrategy"]["expression"] == theirs["retryStrategy"]["expression"]
        device = next(p for p in theirs["inputs"]["parameters"] if p["name"] == "device")
        assert set(device["enum"]) <= {"cpu", "gpu", "auto"}  # what run-batch --device accepts
        image = next(p for p in theirs["inputs"]["parameters"] if p["name"] == "image")
        assert image["value"] == mine["container"]["image"]
    assert chart["spec"]["serviceAccountName"] == C.EXECUTOR_SERVICE_ACCOUNT


def test_each_batch_template_emits_argo_metrics_of_attempts_and_duration_by_flavor():
    workflow = compile_workflow(CASES["mixed"])
    validate_against_crd(workflow, argo_crd())
    for flavor in ("cpu", "gpu", "qpu"):
        metrics = {
            m["name"]: m
            for m in templates(workflow)[f"run-batch-{flavor}"]["metrics"]["prometheus"]
        }
        attempts = metrics["hybrid_quantum_batch_attempts"]
        assert attempts["counter"] == {"value": "1"} and "when" not in attempts
        assert attempts["labels"] == [
            {"key": "flavor", "value": flavor},
            {"key": "status", "value": "{{status}}"},
        ]
        duration = metrics["hybrid_quantum_batch_seconds"]
        assert duration["histogram"]["value"] == "{{duration}}"
        assert duration["histogram"]["buckets"] == list(C.DURATION_BUCKETS)
        assert duration["when"] == "{{status}} == Succeeded"
        assert duration["labels"] == [{"key": "flavor", "value": flavor}]
    # one help text per name across templates (Argo refuses a name with two), no entry template
    helps = {
        (m["name"], m["help"])
        for t in workflow["spec"]["templates"]
        for m in (t.get("metrics") or {}).get("prometheus", [])
    }
    assert len(helps) == 2
    assert "metrics" not in templates(workflow)["main"]
