"""
### Nightly circuit cutting

Every night: prepare the night's ansatz parameters, cut a 12-qubit circuit into two 6-qubit
halves, run every subexperiment as one workflow (local backend by default, Argo + Kueue when the
`hybrid_quantum_default` connection says `kubernetes`), reconstruct the expectation values with
standard errors, and publish a results table that other DAGs can schedule on.

Trigger with `{"mode": "shots", "shots": 4096}` to run with shot noise instead of exactly.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from hybrid_provider.hooks.hybrid_quantum import default_store_uri
from hybrid_provider.operators.cut import CutCircuitOperator
from hybrid_provider.operators.reconstruct import CupyReconstructOperator
from hybrid_provider.operators.submit import ArgoSubmitOperator
from hybrid_provider.sensors.kueue_wait import KueueWaitSensor

CIRCUIT = Path(__file__).parent / "circuits" / "efficient_su2_12q.qasm"
NUM_PARAMETERS = 96
OBSERVABLES = ["ZZZZZZZZZZZZ", "XXXXXXXXXXXX", "IIIIIZZIIIII", "IIIIIIIIIIZZ"]
RESULTS_FOLDER = f"{default_store_uri()}/nightly-results"
NIGHTLY_RESULTS = Asset(name="hybrid_quantum_nightly_results", uri=RESULTS_FOLDER)

with DAG(
    dag_id="nightly_circuit_cutting",
    description="Cut, run and reconstruct a 12-qubit ansatz every night",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "mode": Param("exact", enum=["exact", "shots"], description="exact or shot simulation"),
        "shots": Param(4096, type="integer", minimum=1, description="shots per subexperiment"),
        "num_batches": Param(8, type="integer", minimum=1, description="workflow tasks"),
        "flavor": Param("cpu", enum=["cpu", "gpu", "qpu"], description="Kueue resource flavor"),
    },
    tags=["quantum", "circuit-cutting"],
    doc_md=__doc__,
) as dag:

    @task
    def prepare_inputs(ds: str | None = None) -> list[float]:
        """The night's ansatz parameters: a deterministic function of the logical date."""
        import numpy as np

        seed = int((ds or "2026-01-01").replace("-", ""))
        return np.random.default_rng(seed).uniform(0, 2 * np.pi, NUM_PARAMETERS).round(12).tolist()

    cut = CutCircuitOperator(
        task_id="cut",
        circuit=str(CIRCUIT),
        observables=OBSERVABLES,
        parameters=prepare_inputs(),
        partition_labels="AAAAAABBBBBB",
        num_batches="{{ params.num_batches }}",
    )
    submit = ArgoSubmitOperator(
        task_id="submit",
        manifest_uri=cut.output["manifest_uri"],
        mode="{{ params.mode }}",
        shots="{{ params.shots if params.mode == 'shots' else '' }}",
        flavor="{{ params.flavor }}",
        priority_class="hybrid-quantum-nightly",
    )
    wait = KueueWaitSensor(
        task_id="wait",
        submitted=submit.output,
        target="finished",
        poke_interval=5,
        timeout=timedelta(hours=2).total_seconds(),
        queue_wait_timeout=timedelta(minutes=30),
    )
    reconstruct = CupyReconstructOperator(
        task_id="reconstruct",
        manifest_uri=cut.output["manifest_uri"],
        verify_sample=1,  # rerun one random batch first: publish only what reproduces
    )

    @task(outlets=[NIGHTLY_RESULTS])
    def publish(result: dict, ds: str | None = None) -> str:
        """Write the night's table (value, standard error, exact reference) as CSV."""
        from hybrid_provider.core import store
        from hybrid_provider.core.reconstruct.reference import exact_expectation_values

        exact = exact_expectation_values(result["manifest_uri"]) or [None] * len(result["values"])
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["date", "observable", "value", "std_error", "exact", "abs_error", "mode"])
        for label, value, error, reference in zip(
            result["observables"], result["values"], result["std_errors"], exact, strict=True
        ):
            deviation = "" if reference is None else f"{abs(value - reference):.3e}"
            writer.writerow(
                [ds, label, f"{value:.12f}", f"{error:.3e}", reference, deviation, result["mode"]]
            )
            shown = "n/a" if reference is None else f"{reference:+.10f}"
            print(f"<{label}> reconstructed {value:+.10f} ± {error:.1e}   exact {shown}")
        uri = f"{RESULTS_FOLDER}/{ds}.csv"
        store.write_bytes_atomic(uri, buffer.getvalue().encode())
        return uri

    submit >> wait >> reconstruct
    publish(reconstruct.output)
