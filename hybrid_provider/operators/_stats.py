"""The operators' metrics through Airflow's own metrics client (StatsD, Datadog or
OpenTelemetry, as Airflow's ``[metrics]`` section configures it; nothing is sent when none is
on). Each operator reports what it computed, once per try, tagged with its DAG and task: the
cut its plan, the reconstruction its time and its largest standard error. Per-observable
values and errors are on the Prometheus exporter (``hybrid-quantum metrics``), whose labels
suit them better than StatsD names do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk.observability.stats import Stats

from hybrid_provider.constants import METRICS_PREFIX

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from hybrid_provider.core.cut.job import WrittenJob
    from hybrid_provider.core.reconstruct.combine import Reconstruction


def _tags(task: BaseOperator) -> dict[str, str]:
    return {"dag_id": task.dag_id, "task_id": task.task_id}


def report_cut(task: BaseOperator, job: WrittenJob) -> None:
    """``hybrid_quantum.cut.duration`` (timer; only when this try wrote the job, so a retry
    that reuses it does not time the same cut twice), ``.subexperiments``, ``.batches`` and
    ``.sampling_overhead`` (gauges) of the job."""
    tags, manifest = _tags(task), job.manifest
    if not job.reused and manifest.cut_seconds is not None:
        Stats.timing(
            f"{METRICS_PREFIX}.cut.duration", timedelta(seconds=manifest.cut_seconds), tags=tags
        )
    Stats.gauge(f"{METRICS_PREFIX}.cut.subexperiments", manifest.num_subexperiments, tags=tags)
    Stats.gauge(f"{METRICS_PREFIX}.cut.batches", manifest.num_batches, tags=tags)
    Stats.gauge(
        f"{METRICS_PREFIX}.cut.sampling_overhead", manifest.plan.sampling_overhead, tags=tags
    )


def report_reconstruction(task: BaseOperator, result: Reconstruction) -> None:
    """``hybrid_quantum.reconstruct.duration`` (timer, tagged with the array module) and
    ``hybrid_quantum.result.max_standard_error`` (gauge: the widest error bar of the run,
    0 in exact mode)."""
    tags = _tags(task)
    Stats.timing(
        f"{METRICS_PREFIX}.reconstruct.duration",
        timedelta(seconds=result.seconds),
        tags={**tags, "array_module": result.array_module},
    )
    Stats.gauge(
        f"{METRICS_PREFIX}.result.max_standard_error",
        max(result.std_errors, default=0.0),
        tags=tags,
    )
