"""CutCircuitOperator: plan the cuts and write the job (subexperiments + manifest) to the store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from hybrid_provider.core.cut import DEFAULT_MAX_COEFFICIENTS
from hybrid_provider.operators._common import (
    UsesHybridConnection,
    bad_input_fails_task,
    optional_whole_number,
    safe_path,
    whole_number,
)
from hybrid_provider.operators._stats import report_cut


class CutCircuitOperator(UsesHybridConnection, BaseOperator):
    """Cut a circuit into subcircuits and write its subexperiments, in batches, to the store.

    :param circuit: OpenQASM 2/3 text, a path or URI of a ``.qasm``/``.qpy`` file, or a circuit.
    :param observables: Pauli strings (``"ZZII,XXXX"`` or a list); the rightmost letter acts on
        qubit 0.
    :param parameters: values for the circuit's parameters (a list in circuit order, or a
        name-to-value mapping), typically the output of an upstream task.
    :param partition_labels: one label per qubit, qubit 0 first (``"AABB"``); every gate
        spanning two labels is cut. Give this or ``max_subcircuit_qubits``.
    :param max_subcircuit_qubits: let ``find_cuts`` choose gate and wire cuts under this width.
    :param num_batches: how many batches (workflow tasks) the subexperiments are split into.
    :param max_coefficients: refuse plans needing more QPD coefficients than this (each cut
        multiplies them by up to 8); the default admits 6 cut CX gates.
    :param job_name: folder of the job in the store; by default unique per DAG run and task, so
        a retried task reuses the job it already wrote.
    :param cut_seed: seed of ``find_cuts``' search (automatic cut finding), for a plan that is
        the same on every run.

    Returns (XCom) the manifest URI and the plan's numbers, never the subexperiments.
    """

    template_fields: Sequence[str] = (
        "circuit",
        "observables",
        "parameters",
        "partition_labels",
        "max_subcircuit_qubits",
        "num_batches",
        "job_name",
        "store_uri",
    )
    ui_color = "#d7e9f7"

    def __init__(
        self,
        *,
        circuit: Any,
        observables: str | Sequence[str],
        parameters: Sequence[float] | dict[str, float] | None = None,
        partition_labels: str | None = None,
        max_subcircuit_qubits: int | None = None,
        num_batches: int = 8,
        job_name: str = "{{ dag.dag_id }}/{{ run_id }}/{{ task.task_id }}",
        cut_seed: int = 111,
        max_coefficients: int = DEFAULT_MAX_COEFFICIENTS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # op.output["manifest_uri"] and friends
        super().__init__(**kwargs)
        self.circuit = circuit
        self.observables = observables
        self.parameters = parameters
        self.partition_labels = partition_labels
        self.max_subcircuit_qubits = max_subcircuit_qubits
        self.num_batches = num_batches
        self.job_name = job_name
        self.cut_seed = cut_seed
        self.max_coefficients = max_coefficients

    def execute(self, context: Context) -> dict[str, Any]:
        from hybrid_provider.core.cut.job import write_job
        from hybrid_provider.core.cut.plan import plan_cuts
        from hybrid_provider.core.inputs import load_circuit, parse_observables
        from hybrid_provider.core.provenance import CutRequest, Origin

        started = time.perf_counter()
        with bad_input_fails_task():
            max_qubits = optional_whole_number(self.max_subcircuit_qubits, "max_subcircuit_qubits")
            max_coefficients = whole_number(self.max_coefficients, "max_coefficients")
            cut_seed = whole_number(self.cut_seed, "cut_seed")
            num_batches = whole_number(self.num_batches, "num_batches")
            circuit = load_circuit(self.circuit, self.parameters)
            observables = parse_observables(self.observables, circuit.num_qubits)
            plan = plan_cuts(
                circuit,
                observables,
                partition_labels=self.partition_labels or None,
                max_subcircuit_qubits=max_qubits,
                seed=cut_seed,
                max_coefficients=max_coefficients,
            )
            self.log.info(
                "Cut plan: %d cut(s) (%d gate, %d wire), subcircuit widths %s, sampling "
                "overhead %.4g, %d coefficients",
                plan.num_cuts,
                plan.num_gate_cuts,
                plan.num_wire_cuts,
                plan.subcircuit_widths,
                plan.sampling_overhead,
                plan.num_coefficients,
            )
            job = write_job(
                circuit,
                plan,
                self.hook.store_uri,
                safe_path(self.job_name),
                num_batches,
                plan_seconds=time.perf_counter() - started,
                request=CutRequest(
                    parameters=_recorded(self.parameters),
                    partition_labels=self.partition_labels or None,
                    max_subcircuit_qubits=max_qubits,
                    max_coefficients=max_coefficients,
                    cut_seed=cut_seed,
                    num_batches=num_batches,
                ),
                origin=Origin(
                    dag_id=self.dag_id,
                    run_id=str(context["run_id"]),
                    task_id=self.task_id,
                    try_number=getattr(context.get("ti"), "try_number", None),
                ),
            )
        manifest = job.manifest
        report_cut(self, job)
        self.log.info(
            "%s %d distinct subexperiments (the addon's generator would build %d) in %d batch(es): %s",
            "Reused" if job.reused else "Wrote",
            manifest.num_subexperiments,
            manifest.num_subexperiments_redundant,
            manifest.num_batches,
            job.manifest_uri,
        )
        return {
            "manifest_uri": job.manifest_uri,
            "job_name": manifest.job_name,
            "num_subexperiments": manifest.num_subexperiments,
            "num_batches": manifest.num_batches,
            **plan.summary(),
        }


def _recorded(parameters: Any) -> list[float] | dict[str, float] | None:
    if parameters is None:
        return None
    if isinstance(parameters, dict):
        return {str(name): float(value) for name, value in parameters.items()}
    return [float(value) for value in parameters]
