"""The exact answer for a job, from Qiskit's statevector EstimatorV2, for checking small runs."""

from __future__ import annotations

import io

from qiskit import qpy
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp

from hybrid_provider.core.manifest import load_manifest, read_artifact

#: Beyond this width a statevector no longer fits comfortably in memory; no reference is made.
MAX_REFERENCE_QUBITS = 24


def exact_expectation_values(manifest_uri: str) -> list[float] | None:
    """Exact values of the job's observables on its uncut circuit, or None when too wide."""
    manifest = load_manifest(manifest_uri)
    if manifest.plan.num_qubits > MAX_REFERENCE_QUBITS:
        return None
    (circuit,) = qpy.load(io.BytesIO(read_artifact(manifest_uri, manifest.circuit, "circuit")))
    observables = [SparsePauliOp(label) for label in manifest.observables]
    result = StatevectorEstimator().run([(circuit, observables)]).result()
    return [float(v) for v in result[0].data.evs]
