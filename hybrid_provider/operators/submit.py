"""ArgoSubmitOperator: compile the batches into a workflow and submit it to the backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context

from hybrid_provider.backends.spec import label_value, workflow_name
from hybrid_provider.constants import DAG_ID_LABEL, RUN_ID_LABEL, TASK_ID_LABEL
from hybrid_provider.core.errors import HybridQuantumError
from hybrid_provider.core.execute.options import execution_options
from hybrid_provider.core.execute.runtime_options import is_local, is_runtime_sampler
from hybrid_provider.core.manifest import load_manifest
from hybrid_provider.hooks.ibm_runtime import IBMRuntimeHook
from hybrid_provider.links import ArgoWorkflowLink
from hybrid_provider.operators._common import (
    UsesHybridConnection,
    bad_input_fails_task,
    optional_whole_number,
)
from hybrid_provider.placement.decide import DEFAULT_REPLACE_AFTER_S, placed_spec, write_decision
from hybrid_provider.placement.policy import AUTO


def needs_account(sampler: str) -> bool:
    """A real IBM Quantum device needs the account; fake devices and simulators do not."""
    return is_runtime_sampler(sampler) and not is_local(sampler)


class ArgoSubmitOperator(UsesHybridConnection, BaseOperator):
    """Submit a cut job's batches as one workflow (an Argo Workflow on Kubernetes).

    The workflow's name comes from (dag_id, task_id, run_id), so a retried or restarted task
    finds the workflow it already submitted and reattaches instead of submitting a second one.
    Killing the task stops the workflow.

    :param manifest_uri: the cut job, usually ``CutCircuitOperator``'s output.
    :param mode: ``exact`` (simulators, no shot noise) or ``shots``.
    :param shots: shots per subexperiment in shot mode.
    :param flavor: ``cpu``, ``gpu`` or ``qpu`` (Kueue resource flavor the batches ask for), or
        ``auto``: each batch placed from the backend's live queues and earlier runs' history
        (``docs/placement.md``; the decision and its numbers go to the log and the report).
        Default: the connection's ``flavor``, else ``cpu``.
    :param replace_after: ``auto`` only: a batch still waiting for quota after this long moves
        to another eligible flavor with a free slot (never run twice); None: never moves.
    :param sampler: ``aer`` (default), ``aer-sampler``, ``ibm-runtime:DEVICE`` (an IBM Quantum
        device, or ``ibm-runtime:fake_torino`` for the Runtime's local testing mode), or
        ``module:attribute`` of a SamplerV2 or backend (shot mode only).
    :param runtime_options: IBM Runtime job options (``twirl_gates``, ``twirl_measure``,
        ``dynamical_decoupling``, ``max_execution_time``, ``optimization_level``).
    :param ibm_runtime_conn_id: the ``ibm_runtime`` connection with the IBM Quantum account;
        read for a real device on the local backend (a pod reads the account's Secret).
    :param device: Aer device: ``auto`` (default: the GPU when the worker has one), ``gpu`` or ``cpu``.
    :param shot_allocation: shot mode: ``uniform`` (the same shots per subexperiment) or
        ``weighted`` (the same total, spread by each subexperiment's |coefficient| weight).
    :param seed: seed of the built-in shot sampler; batch ``i`` draws from ``(seed, i)``, so a
        rerun (``hybrid-quantum verify``) draws the same shots.
    :param queue_name: the Kueue LocalQueue; by default the chart's queue for the flavor.
    :param priority_class: a Kueue WorkloadPriorityClass (e.g. ``hybrid-quantum-nightly``), so
        urgent work can preempt it, or it can preempt less urgent work.
    :param workflow_name: a name of your own instead of the one derived from the DAG, task and
        run (lower case, digits and ``-``; a retry must give the same one to reattach).

    Returns (XCom) the workflow's name, the backend it went to with that backend's settings
    (``KueueWaitSensor(submitted=...)`` reads the same place), the batch count and a UI link.
    """

    template_fields: Sequence[str] = (
        "manifest_uri",
        "mode",
        "shots",
        "flavor",
        "sampler",
        "device",
        "shot_allocation",
        "queue_name",
        "priority_class",
        "workflow_name",
        "store_uri",
    )
    ui_color = "#e8dff5"
    operator_extra_links = (ArgoWorkflowLink(),)

    def __init__(
        self,
        *,
        manifest_uri: str,
        mode: str = "exact",
        shots: int | None = None,
        seed: int = 1234,
        device: str = "auto",
        sampler: str = "aer",
        shot_allocation: str = "uniform",
        runtime_options: dict[str, Any] | None = None,
        ibm_runtime_conn_id: str = IBMRuntimeHook.default_conn_name,
        flavor: str | None = None,
        replace_after: timedelta | float | None = DEFAULT_REPLACE_AFTER_S,
        queue_name: str | None = None,
        priority_class: str | None = None,
        workflow_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # op.output["manifest_uri"] and friends
        super().__init__(**kwargs)
        self.manifest_uri = manifest_uri
        self.mode = mode
        self.shots = shots
        self.seed = seed
        self.device = device
        self.sampler = sampler
        self.shot_allocation = shot_allocation
        self.runtime_options = runtime_options
        self.ibm_runtime_conn_id = ibm_runtime_conn_id
        self.flavor = flavor
        self.replace_after = (
            replace_after.total_seconds() if isinstance(replace_after, timedelta) else replace_after
        )
        self.queue_name = queue_name
        self.priority_class = priority_class
        self.workflow_name = workflow_name
        self._submitted: str | None = None
        self.argo_workflow_url: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        dag_id, task_id, run_id = self.dag_id, self.task_id, context["run_id"]
        with bad_input_fails_task():
            backend = self.hook.get_backend()  # an unknown backend is bad input, not bad luck
            manifest = load_manifest(self.manifest_uri)
            options = execution_options(
                mode=self.mode,
                shots=optional_whole_number(self.shots, "shots"),
                seed=self.seed,
                device=self.device,
                sampler=self.sampler,
                shot_allocation=self.shot_allocation or "uniform",
                runtime=self.runtime_options or None,
            )
            name = self.workflow_name or workflow_name(dag_id, task_id, run_id)
            requested = self.flavor or self.hook.default_flavor
            spec, placement = placed_spec(
                backend,
                manifest,
                self.manifest_uri,
                name,
                options,
                requested=requested,
                store_uri=self.hook.store_uri,
                replace_after=self.replace_after,
                queue_name=self.queue_name or None,
                priority_class=self.priority_class or None,
                labels={
                    DAG_ID_LABEL: label_value(dag_id),
                    TASK_ID_LABEL: label_value(task_id),
                    RUN_ID_LABEL: label_value(run_id),
                },
            )
        if requested == AUTO:
            for line in placement.lines():
                self.log.info("%s", line)
            self.log.info("Decision written to %s", write_decision(self.manifest_uri, placement))
        self._submitted = spec.name  # before submit: a kill while submitting still stops it
        with bad_input_fails_task():  # a missing queue is bad input; an API error is retried
            if backend.name == "local" and needs_account(options.sampler):
                # the local runner passes QISKIT_* on to its batches, as a pod's Secret would
                os.environ.update(IBMRuntimeHook(self.ibm_runtime_conn_id).environment())
            status = backend.submit(spec)
        self.log.info(
            "Workflow %s on the %s backend: %s (%d batches of %s)",
            spec.name,
            backend.name,
            status.summary_line(),
            len(spec.batches),
            ", ".join(spec.flavors),
        )
        url = backend.ui_url(spec.name)
        self.argo_workflow_url = url
        if url:
            self.log.info("Watch it at %s", url)
        return {
            "workflow_name": spec.name,
            "backend": backend.name,
            "backend_config": backend.config(),
            "manifest_uri": self.manifest_uri,
            "num_batches": len(spec.batches),
            "placement": placement.counts(),
            "ui_url": url,
        }

    def on_kill(self) -> None:
        if self._submitted:
            self.log.info("Task killed: stopping workflow %s", self._submitted)
            try:
                self.hook.get_backend().stop(self._submitted)
            except HybridQuantumError as exc:  # nothing was created yet, or it is gone
                self.log.warning("Could not stop workflow %s: %s", self._submitted, exc)
            if is_runtime_sampler(self.sampler):
                self._cancel_provider_jobs()

    def _cancel_provider_jobs(self) -> None:
        """A killed task cancels the QPU provider's jobs of its batches (retries reattach)."""
        from hybrid_provider.core.execute.ibm_runtime import cancel_batch_jobs

        try:
            for index in range(load_manifest(self.manifest_uri).num_batches):
                for job_id in cancel_batch_jobs(self.manifest_uri, index):
                    self.log.info("Cancelled provider job %s of batch %d", job_id, index)
        except HybridQuantumError as exc:
            self.log.warning("Could not cancel the provider jobs: %s", exc)
