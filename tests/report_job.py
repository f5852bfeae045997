"""A small finished cut job in a temporary store, for the report and plugin tests.

Four qubits cut into two halves of two, three observables, two batches run with shots, the
reconstruction written where the operator writes it: what a DAG run leaves behind, in seconds.
"""

from __future__ import annotations

from pathlib import Path

from hybrid_provider.core import store
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import execution_options
from hybrid_provider.core.inputs import load_circuit, parse_observables
from hybrid_provider.core.provenance import Origin
from hybrid_provider.core.reconstruct.combine import reconstruct_job
from hybrid_provider.core.reconstruct.result import ReconstructionResult, write_result

QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[4];
h q[0]; h q[1]; h q[2]; h q[3];
ry(0.3) q[0]; ry(0.7) q[3];
cx q[1],q[2];
rz(0.4) q[1]; rx(0.9) q[2];
cx q[0],q[1]; cx q[2],q[3];
"""
OBSERVABLES = ["ZZZZ", "XXXX", "IZZI"]
JOB_NAME = "nightly/run_1/cut"


def make_job(root: Path, *, shots: int = 4000, origin: Origin | None = None) -> dict:
    """Cut, run and reconstruct the job under ``root``; returns its URIs and the result.

    ``origin``: the Airflow task recorded as the job's maker (None: as the CLI cuts it).
    """
    store_uri = store.normalise_uri(root)
    circuit = load_circuit(QASM)
    plan = plan_cuts(circuit, parse_observables(OBSERVABLES, 4), partition_labels="AABB")
    job = write_job(circuit, plan, store_uri, JOB_NAME, 2, origin=origin)
    options = execution_options(mode="shots", shots=shots, seed=7)
    for index in range(job.manifest.num_batches):
        run_batch(job.manifest_uri, index, options)
    result = reconstruct_job(job.manifest_uri, device="cpu")
    published = ReconstructionResult.of(job.manifest_uri, result)
    write_result(published)
    payload = published.model_dump(mode="json")
    return {
        "store_uri": store_uri,
        "manifest_uri": job.manifest_uri,
        "manifest": job.manifest,
        "payload": payload,
        "job_dir": root / JOB_NAME,
    }
