"""The artifact store: manifest written last, checksums enforced, results reused, nothing partial."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import random_ansatz, run_job
from qiskit import qasm2
from qiskit.quantum_info import PauliList

import hybrid_provider.core.cut.job as job_module
import hybrid_provider.core.execute.batch as batch_module
from hybrid_provider.core import store
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions, execution_options
from hybrid_provider.core.execute.record import outcomes_uri, record_uri
from hybrid_provider.core.inputs import load_circuit
from hybrid_provider.core.manifest import MANIFEST_NAME, artifact_uri, load_manifest
from hybrid_provider.core.reconstruct.combine import reconstruct_job


@pytest.fixture
def plan():
    circuit = random_ansatz(4, reps=1)
    return circuit, plan_cuts(circuit, PauliList(["ZZZZ", "XXXX"]), partition_labels="AABB")


def test_manifest_lists_every_file_with_its_checksum(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "night/1", num_batches=3)
    manifest = load_manifest(job.manifest_uri)
    assert manifest.schema_version == 3 and manifest.num_batches == 3
    assert sum(b.count for b in manifest.batches) == manifest.num_choices
    for ref in [manifest.circuit, manifest.plan_circuit, manifest.choices]:
        data = store.read_bytes(artifact_uri(job.manifest_uri, ref.path))
        assert store.sha256(data) == ref.sha256


def test_a_crash_while_writing_leaves_no_manifest(tmp_path, plan, monkeypatch):
    circuit, cut_plan = plan

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(job_module, "_batches", crash)
    with pytest.raises(OSError, match="disk full"):
        write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    assert not (tmp_path / "job" / MANIFEST_NAME).exists()


def test_rewriting_the_same_job_reuses_it_and_a_different_one_is_refused(tmp_path, plan):
    circuit, cut_plan = plan
    first = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    again = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    assert again.reused and again.manifest == first.manifest
    with pytest.raises(ArtifactError, match="different cut job already exists"):
        write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=3)


def test_the_same_file_loaded_twice_in_one_process_is_the_same_job(tmp_path):
    """Qiskit names each loaded circuit circuit-<counter>: a retried cut in the same process
    (dags test, a notebook) must still find its job."""
    path = tmp_path / "c.qasm"
    path.write_text(qasm2.dumps(random_ansatz(4, reps=1)))
    first, second = load_circuit(str(path)), load_circuit(str(path))
    assert first.name != second.name
    observables = PauliList(["ZZZZ"])
    jobs = [
        write_job(c, plan_cuts(c, observables, partition_labels="AABB"), str(tmp_path), "j", 2)
        for c in (first, second)
    ]
    assert jobs[1].reused and jobs[1].manifest == jobs[0].manifest


def test_a_finished_batch_is_not_run_again_but_other_options_run_it(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    exact = ExecutionOptions()
    assert not run_batch(job.manifest_uri, 0, exact).skipped
    assert run_batch(job.manifest_uri, 0, exact).skipped
    shots = ExecutionOptions(mode="shots", shots=100)
    assert not run_batch(job.manifest_uri, 0, shots).skipped


@pytest.mark.parametrize(
    ("relative", "what"),
    [("plan/circuit.qpy", "plan"), ("plan/choices.npz", "the plan's term choices")],
)
def test_a_tampered_plan_is_refused_by_name(tmp_path, plan, relative, what):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    tampered = tmp_path / "job" / relative
    tampered.write_bytes(tampered.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match=rf"{what} .*fails its checksum"):
        run_batch(job.manifest_uri, 1, ExecutionOptions())
    assert not (tmp_path / "job" / "results" / "batch-00001.json").exists()


def test_a_plan_that_rebuilds_differently_is_refused(tmp_path, plan, monkeypatch):
    """Another qiskit-addon-cutting could partition the same inputs differently: the batch
    compares each rebuilt subcircuit's digest with the manifest's before running anything."""
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    real = batch_module.build_problem
    monkeypatch.setattr(
        batch_module, "build_problem", lambda c, o, cut: real(c.reverse_bits(), o, cut)
    )
    with pytest.raises(ArtifactError, match="subcircuit A rebuilt from the stored plan differs"):
        run_batch(job.manifest_uri, 0, ExecutionOptions())
    assert not (tmp_path / "job" / "results" / "batch-00000.json").exists()


def test_reconstruction_names_missing_and_corrupt_batches_and_publishes_nothing(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=3)
    run_batch(job.manifest_uri, 0, ExecutionOptions())
    run_batch(job.manifest_uri, 2, ExecutionOptions())
    with pytest.raises(ArtifactError, match=r"(?s)1 of 3 .*batch 1: batch 1 has no result yet"):
        reconstruct_job(job.manifest_uri)
    run_batch(job.manifest_uri, 1, ExecutionOptions())
    results = tmp_path / "job" / "results" / "batch-00002.npz"
    results.write_bytes(results.read_bytes()[:-10])
    with pytest.raises(
        ArtifactError, match=r"(?s)batch 2: result of batch 2 .* fails its checksum"
    ):
        reconstruct_job(job.manifest_uri)
    assert not (tmp_path / "job" / "results" / "reconstruction.json").exists()


def test_mixed_options_across_batches_are_refused(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    run_batch(job.manifest_uri, 0, ExecutionOptions())
    run_batch(job.manifest_uri, 1, ExecutionOptions(mode="shots", shots=10))
    with pytest.raises(ArtifactError, match="different execution options"):
        reconstruct_job(job.manifest_uri)


def test_manifest_of_another_schema_version_is_refused(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=1)
    path = tmp_path / "job" / MANIFEST_NAME
    payload = json.loads(path.read_text())
    payload["schema_version"] = 99
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="schema version 99"):
        load_manifest(job.manifest_uri)


def test_any_fsspec_protocol_works_as_the_store():
    circuit = random_ansatz(4, reps=1)
    job, result = run_job(circuit, ["ZZZZ"], "memory://hq-tests", partition_labels="AABB")
    assert job.manifest_uri.startswith("memory://")
    assert store.exists(record_uri(job.manifest_uri, 0))
    assert store.exists(outcomes_uri(job.manifest_uri, 0))
    assert np.isfinite(result.values[0])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "shots"}, "positive number of shots"),
        ({"mode": "exact", "shots": 10}, "takes no shot count"),
        ({"mode": "exact", "sampler": "aer-sampler"}, "needs the built-in simulator"),
        ({"mode": "fast"}, "mode"),
    ],
)
def test_execution_options_errors_read_as_one_sentence(fields, message):
    with pytest.raises(InputError, match=message):
        execution_options(**fields)


def test_unknown_batch_and_unknown_sampler(tmp_path, plan):
    circuit, cut_plan = plan
    job = write_job(circuit, cut_plan, str(tmp_path), "job", num_batches=2)
    with pytest.raises(InputError, match="batch 5 does not exist: the job has batches 0..1"):
        run_batch(job.manifest_uri, 5, ExecutionOptions())
    with pytest.raises(ValueError, match="unknown sampler 'nonsense'"):  # refused when built
        ExecutionOptions(mode="shots", shots=5, sampler="nonsense")
    with pytest.raises(InputError, match="cannot import sampler 'nosuch:Sampler'"):
        run_batch(
            job.manifest_uri, 0, ExecutionOptions(mode="shots", shots=5, sampler="nosuch:Sampler")
        )


def test_store_credentials_come_from_the_pods_environment(monkeypatch):
    monkeypatch.setenv("HYBRID_QUANTUM_STORE_endpoint_url", "http://127.0.0.1:9000")
    fs, _ = store.filesystem("memory://bucket/job")
    assert fs.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
    local, _ = store.filesystem("file:///tmp")
    assert "endpoint_url" not in local.storage_options
