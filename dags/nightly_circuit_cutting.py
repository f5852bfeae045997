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
import logging
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param, task
from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.hooks.hybrid_quantum import default_store_uri
from hybrid_provider.operators._common import safe_path
from hybrid_provider.operators.cut import CutCircuitOperator
from hybrid_provider.operators.reconstruct import CupyReconstructOperator
from hybrid_provider.operators.submit import ArgoSubmitOperator
from hybrid_provider.sensors.kueue_wait import KueueWaitSensor

CIRCUIT = Path(__file__).parent / "circuits" / "efficient_su2_12q.qasm"
NUM_PARAMETERS = 96
OBSERVABLES = ["ZZZZZZZZZZZZ", "XXXXXXXXXXXX", "IIIIIZZIIIII", "IIIIIIIIIIZZ"]
RESULTS_FOLDER = f"{default_store_uri()}/nightly-results"
NIGHTLY_RESULTS = Asset(name="hybrid_quantum_nightly_results", uri=RESULTS_FOLDER)

#: Run types that stand for the night of their logical date; any other run is ad hoc.
NIGHTLY_RUN_TYPES = ("scheduled", "backfill")


def results_uri(run_type: str | None, ds: str | None, run_id: str) -> str:
    """Where a run publishes: a night's run (scheduled, or a backfill of that night) at
    ``<ds>.csv``, which the Asset's consumers read; any other run (triggered by hand or over
    REST, with or without a logical date) under ``adhoc/`` by its run id, so that it never
    overwrites a night's file and two triggers never share one."""
    if run_type in NIGHTLY_RUN_TYPES:  # a str enum from the task context compares equal
        if not ds:
            raise AirflowFailException(
                f"the nightly run {run_id} has no logical date to name its results"
            )
        return f"{RESULTS_FOLDER}/{ds}.csv"
    return f"{RESULTS_FOLDER}/adhoc/{safe_path(run_id)}.csv"


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
    def publish(
        result: dict,
        ds: str | None = None,
        dag_run=None,
        run_id: str | None = None,
        outlet_events=None,
    ) -> str:
        """Write the run's table (value, standard error, exact reference) as CSV; return its URI,
        also in the Asset event, so a consumer reads this run's file, ad hoc or nightly."""
        from hybrid_provider.core import store

        exact = result.get("exact") or [None] * len(result["values"])  # computed by reconstruct
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
        uri = results_uri(getattr(dag_run, "run_type", None), ds, run_id or "")
        store.write_bytes_atomic(uri, buffer.getvalue().encode())
        if outlet_events is not None:
            outlet_events[NIGHTLY_RESULTS].extra = {"results_uri": uri, "logical_date": ds}
        logging.getLogger(__name__).info("Published %d rows to %s", len(exact), uri)
        return uri

    submit >> wait >> reconstruct
    publish(reconstruct.output)
