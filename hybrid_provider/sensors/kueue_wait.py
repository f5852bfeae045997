"""KueueWaitSensor: wait for a submitted workflow's batches to be admitted, or to finish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.backends.status import BatchPhase, WorkflowPhase, WorkflowStatus
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook
from hybrid_provider.operators._common import UsesHybridConnection

TARGETS = ("admitted", "finished")


class KueueWaitSensor(UsesHybridConnection, BaseSensorOperator):
    """Report admission and progress per flavor on every poke; succeed at the chosen target.

    :param workflow_name: the workflow, usually ``ArgoSubmitOperator``'s output.
    :param target: ``finished`` (every batch done) or ``admitted`` (every batch got quota).
    :param queue_wait_timeout: fail when batches have waited this long for quota with none of
        the workflow's batches running. Separate from ``timeout``, which bounds the whole wait,
        so a full queue and a slow run are told apart.
    """

    template_fields: Sequence[str] = ("workflow_name", "target", "store_uri")
    ui_color = "#fff3cd"

    def __init__(
        self,
        *,
        workflow_name: str,
        target: str = "finished",
        queue_wait_timeout: timedelta | float | None = None,
        hybrid_conn_id: str = HybridQuantumHook.default_conn_name,
        backend: str | None = None,
        store_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 10)
        super().__init__(**kwargs)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        self.workflow_name = workflow_name
        self.target = target
        self.queue_wait_timeout = (
            queue_wait_timeout.total_seconds()
            if isinstance(queue_wait_timeout, timedelta)
            else queue_wait_timeout
        )
        self.hybrid_conn_id = hybrid_conn_id
        self.backend = backend
        self.store_uri = store_uri
        self._last_poke: datetime | None = None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        status = self.hook.get_backend().status(self.workflow_name)
        self._log_progress(status)
        if status.phase in (WorkflowPhase.FAILED, WorkflowPhase.ERROR):
            raise AirflowFailException(failure_message(status))
        if status.phase.finished or (self.target == "admitted" and status.all_admitted):
            return PokeReturnValue(is_done=True, xcom_value=summary(status))
        waited = status.queue_wait_seconds()
        if self.queue_wait_timeout is not None and waited > self.queue_wait_timeout:
            raise AirflowFailException(
                f"queue wait exceeded: batches of {self.workflow_name} waited {waited:.0f} s for "
                f"quota (limit {self.queue_wait_timeout:.0f} s) with none running; "
                + pending_description(status)
                + ". Raise the queue's quota, lower the priority of competing work, or "
                "raise queue_wait_timeout"
            )
        return False

    def _log_progress(self, status: WorkflowStatus) -> None:
        now = datetime.now(timezone.utc)
        since = self._last_poke or now - timedelta(seconds=float(self.poke_interval))
        for batch in status.batches:
            if (
                batch.phase == BatchPhase.SUCCEEDED
                and batch.finished_at
                and batch.finished_at > since
            ):
                self.log.info(
                    "batch %d/%d done, %.1f s (%s)",
                    batch.index + 1,
                    status.total,
                    batch.duration_s or 0.0,
                    batch.flavor,
                )
        self._last_poke = now
        self.log.info("%s: %s", self.workflow_name, status.summary_line())
        pending = [b for b in status.batches if b.phase == BatchPhase.PENDING]
        if pending:
            self.log.info("Waiting for admission: %s", pending_description(status))


def pending_description(status: WorkflowStatus) -> str:
    parts = []
    for batch in status.batches:
        if batch.phase == BatchPhase.PENDING:
            where = f"position {batch.queue_position}" if batch.queue_position is not None else ""
            why = batch.message or batch.reason or "waiting for quota"
            parts.append(
                f"batch {batch.index} ({batch.flavor}, {why}{', ' + where if where else ''})"
            )
    return "; ".join(parts[:10]) + (f"; and {len(parts) - 10} more" if len(parts) > 10 else "")


def failure_message(status: WorkflowStatus) -> str:
    failed = status.failed_batches
    details = "; ".join(f"batch {b.index}: {b.message or b.reason}" for b in failed[:10])
    return f"workflow {status.name} {status.phase.value}: {status.message or ''}" + (
        f" — failed batches: {details}" if details else ""
    )


def summary(status: WorkflowStatus) -> dict[str, Any]:
    return {
        "workflow_name": status.name,
        "phase": status.phase.value,
        "progress": status.progress,
        "by_flavor": status.by_flavor(),
        "ui_url": status.ui_url,
    }
