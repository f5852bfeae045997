"""Provenance in every job and result, and ``verify``: a rerun reproduces the stored outcomes.

Spec: the manifest records the software, circuit hash, request and origin of a job; each batch
record adds where it ran and the seeds it used; both are covered by checksums; results are
identified by what they compute (not by the device), so batches may run anywhere; ``verify``
reruns batches and passes only when the outcomes are bit-identical.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import exact_values, random_ansatz, run_job
from qiskit.quantum_info import PauliList

import hybrid_provider.core.execute.batch as batch_module
from hybrid_provider.cli import main
from hybrid_provider.core import provenance, store
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute import deferred
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.record import outcomes_uri, read_record, record_uri
from hybrid_provider.core.manifest import load_manifest
from hybrid_provider.core.provenance import CutRequest, Origin, Software
from hybrid_provider.core.reconstruct.combine import reconstruct_job
from hybrid_provider.core.reconstruct.report import write_report
from hybrid_provider.core.reconstruct.result import ReconstructionResult
from hybrid_provider.core.verify import verify_job

OBSERVABLES = ["ZZZZ", "XXXX"]
SHOTS = ExecutionOptions(mode="shots", shots=300, seed=99)


@pytest.fixture
def circuit():
    return random_ansatz(4, reps=1)


@pytest.fixture
def shot_job(tmp_path, circuit):
    job, _ = run_job(circuit, OBSERVABLES, tmp_path / "store", SHOTS, partition_labels="AABB")
    return job


def _path(uri: str):
    from pathlib import Path

    return Path(uri.removeprefix("file://"))


# --- what a job records ----------------------------------------------------------------------


def test_the_manifest_records_software_circuit_request_and_origin(tmp_path, circuit):
    plan = plan_cuts(circuit, PauliList(OBSERVABLES), partition_labels="AABB")
    request = CutRequest(parameters=[0.5], partition_labels="AABB", max_coefficients=7776,
                         num_batches=2)  # fmt: skip
    origin = Origin(dag_id="nightly", run_id="scheduled__2026", task_id="cut", try_number=1)
    job = write_job(circuit, plan, str(tmp_path), "j", 2, request=request, origin=origin)
    recorded = load_manifest(job.manifest_uri).provenance
    packages = recorded.software.packages
    for name in ("qiskit", "qiskit-aer", "qiskit-addon-cutting", "numpy", "scipy",
                 "airflow-provider-hybrid-quantum"):  # fmt: skip
        assert packages[name], name
    assert recorded.circuit_sha256 == job.manifest.circuit.sha256
    assert (recorded.request, recorded.origin) == (request, origin)


def test_every_batch_record_says_where_it_ran_and_which_seeds_it_used(shot_job, monkeypatch):
    for batch in shot_job.manifest.batches:
        made = read_record(shot_job.manifest_uri, batch.index).provenance
        assert made.software == provenance.software()
        assert made.executor.kind == "process" and made.executor.pod is None
        assert (made.device, made.simulator) == ("cpu", "aer statevector")
        assert made.seeds.sampling_entropy == [SHOTS.seed, batch.index]
        assert made.seeds.reproducible


def test_a_pod_records_its_pod_node_workflow_and_flavor(tmp_path, circuit, monkeypatch):
    pod = {"HYBRID_QUANTUM_POD_NAME": "hq-night-cpu-1", "HYBRID_QUANTUM_POD_NAMESPACE": "q",
           "HYBRID_QUANTUM_POD_UID": "u-1", "HYBRID_QUANTUM_NODE_NAME": "node-a",
           "HYBRID_QUANTUM_WORKFLOW": "hq-night", "HYBRID_QUANTUM_FLAVOR": "cpu",
           "HYBRID_QUANTUM_IMAGE": "registry/executor@sha256:" + "0" * 64}  # fmt: skip
    for name, value in pod.items():
        monkeypatch.setenv(name, value)
    job, _ = run_job(circuit, OBSERVABLES, tmp_path, partition_labels="AABB", num_batches=1)
    executor = read_record(job.manifest_uri, 0).provenance.executor
    assert executor.kind == "pod"
    assert (executor.pod, executor.namespace, executor.pod_uid, executor.node) == (
        "hq-night-cpu-1", "q", "u-1", "node-a",
    )  # fmt: skip
    assert (executor.workflow, executor.flavor) == ("hq-night", "cpu")
    assert executor.image.endswith("0" * 64)


def test_exact_mode_records_no_sampling_seed(tmp_path, circuit):
    job, _ = run_job(circuit, OBSERVABLES, tmp_path, partition_labels="AABB", num_batches=1)
    assert read_record(job.manifest_uri, 0).provenance.seeds.sampling_entropy is None


# --- checksums cover it ----------------------------------------------------------------------


def test_a_tampered_version_in_the_manifest_is_caught(shot_job):
    path = _path(shot_job.manifest_uri)
    payload = json.loads(path.read_text())
    payload["provenance"]["software"]["packages"]["qiskit"] = "0.0.1"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="fails its own checksum"):
        load_manifest(shot_job.manifest_uri)


def test_a_tampered_version_in_a_batch_record_is_caught_and_named(shot_job):
    path = _path(record_uri(shot_job.manifest_uri, 1))
    payload = json.loads(path.read_text())
    payload["provenance"]["software"]["packages"]["qiskit-aer"] = "0.0.1"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match=r"batch 1: .*fails its own checksum"):
        reconstruct_job(shot_job.manifest_uri, device="cpu")


# --- what a result is a result of ------------------------------------------------------------


def test_rerunning_a_batch_elsewhere_reuses_it_and_mixed_devices_reconstruct(tmp_path, circuit):
    """The device is placement, not identity: batch 0 on cpu, the rest on auto, one answer."""
    plan = plan_cuts(circuit, PauliList(OBSERVABLES), partition_labels="AABB")
    job = write_job(circuit, plan, str(tmp_path), "mixed", 3)
    run_batch(job.manifest_uri, 0, ExecutionOptions(device="cpu"))
    assert run_batch(job.manifest_uri, 0, ExecutionOptions(device="auto")).skipped
    for index in (1, 2):
        run_batch(job.manifest_uri, index, ExecutionOptions(device="auto"))
    result = reconstruct_job(job.manifest_uri, device="cpu")
    np.testing.assert_allclose(result.values, exact_values(circuit, OBSERVABLES), atol=1e-10)


def test_batches_with_other_software_are_flagged_in_the_result_and_the_report(
    tmp_path, circuit, monkeypatch
):
    plan = plan_cuts(circuit, PauliList(OBSERVABLES), partition_labels="AABB")
    job = write_job(circuit, plan, str(tmp_path), "versions", 2)
    run_batch(job.manifest_uri, 0, ExecutionOptions())
    older = Software(
        python="3.11.0", packages={**provenance.software().packages, "qiskit-aer": "0.15.0"}
    )
    monkeypatch.setattr(batch_module, "software", lambda: older)
    run_batch(job.manifest_uri, 1, ExecutionOptions())
    result = reconstruct_job(job.manifest_uri, device="cpu")
    assert set(result.mixed_software) == {"python", "qiskit-aer"}
    assert result.mixed_software["qiskit-aer"]["0.15.0"] == [1]
    html_uri, _ = write_report(
        job.manifest_uri, ReconstructionResult.of(job.manifest_uri, result), exact=None
    )
    page = store.read_bytes(html_uri).decode()
    assert "Batches ran with different versions of python, qiskit-aer" in page
    assert 'id="provenance"' in page and job.manifest.provenance.circuit_sha256 in page


# --- verify ----------------------------------------------------------------------------------


def test_verify_passes_on_an_untouched_job(shot_job, capsys):
    assert main(["verify", shot_job.manifest_uri]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 batch(es) reproduced" in out


def test_verify_a_sample_reruns_only_that_many_batches(shot_job, monkeypatch):
    calls = []
    real = batch_module.compute_batch
    monkeypatch.setattr(
        "hybrid_provider.core.verify.compute_batch",
        lambda *a, **k: calls.append(a[2]) or real(*a, **k),
    )
    verification = verify_job(shot_job.manifest_uri, sample=2, seed=5)
    assert verification.ok and len(calls) == 2 == len(set(calls))


def test_verify_fails_naming_the_batch_whose_outcomes_came_from_another_seed(shot_job, capsys):
    run_batch(shot_job.manifest_uri, 2, SHOTS.model_copy(update={"seed": 7}))  # replaces it
    assert main(["verify", shot_job.manifest_uri]) == 1
    out = capsys.readouterr().out
    assert "batch 2: DIFFERS: it ran with other options" in out and "'seed': 7" in out
    assert "batch 0: matches" in out


def test_verify_fails_naming_the_batch_whose_outcome_file_was_replaced(tmp_path, circuit, shot_job):
    other, _ = run_job(
        circuit, OBSERVABLES, tmp_path / "other", SHOTS.model_copy(update={"seed": 7}),
        partition_labels="AABB",
    )  # fmt: skip
    shutil.copy(
        _path(outcomes_uri(other.manifest_uri, 1)), _path(outcomes_uri(shot_job.manifest_uri, 1))
    )
    checks = {c.index: c for c in verify_job(shot_job.manifest_uri).checks}
    assert not checks[1].matched and "fails its checksum" in checks[1].reason
    assert checks[0].matched and checks[2].matched


def test_verify_names_the_software_that_differs_when_a_rerun_does_not_match(
    tmp_path, circuit, monkeypatch
):
    """A batch made by 'another Aer' (probabilities nudged, version changed) fails verify, and
    the report of the failure names the version difference."""
    plan = plan_cuts(circuit, PauliList(OBSERVABLES), partition_labels="AABB")
    job = write_job(circuit, plan, str(tmp_path), "aer", 2)
    run_batch(job.manifest_uri, 0, ExecutionOptions())
    real = deferred.exact_means
    nudged = lambda *a, **k: (means * (1 + 1e-12) for means in real(*a, **k))  # noqa: E731
    other = Software(python=provenance.software().python,
                     packages={**provenance.software().packages, "qiskit-aer": "9.9.9"})  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(deferred, "exact_means", nudged)
        patch.setattr(batch_module, "software", lambda: other)
        run_batch(job.manifest_uri, 1, ExecutionOptions())
    checks = verify_job(job.manifest_uri).checks
    assert checks[0].matched
    assert not checks[1].matched and checks[1].differences["qiskit-aer"][0] == "9.9.9"
    assert "qiskit-aer 9.9.9 →" in checks[1].line()


def test_verify_refuses_a_batch_that_does_not_exist(shot_job, capsys):
    assert main(["verify", shot_job.manifest_uri, "--batches", "7"]) == 2
    assert "batch 7 does not exist" in capsys.readouterr().err


def test_a_supplied_unseeded_sampler_is_reported_as_not_reproducible(tmp_path, circuit):
    options = ExecutionOptions(mode="shots", shots=100, sampler="aer-sampler")
    job, _ = run_job(
        circuit, OBSERVABLES, tmp_path, options, partition_labels="AABB", num_batches=1
    )
    (check,) = verify_job(job.manifest_uri).checks
    assert not check.matched and "draws its own randomness" in check.reason
