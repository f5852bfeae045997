"""KueueWaitSensor: wait for a submitted workflow's batches to be admitted, or to finish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.backends.base import WorkflowBackend, get_backend
from hybrid_provider.backends.status import WorkflowStatus
from hybrid_provider.backends.waiting import (
    TARGETS,
    Seen,
    WaitState,
    batch_name,
    clock,
    evaluate,
    progress_lines,
    summary,
    transitions,
)
from hybrid_provider.core import store
from hybrid_provider.core.manifest import artifact_uri
from hybrid_provider.core.reconstruct.report import TIMELINE_JSON
from hybrid_provider.operators._common import UsesHybridConnection
from hybrid_provider.placement.decide import read_decision, remember_run


class KueueWaitSensor(UsesHybridConnection, BaseSensorOperator):
    """Report admission and progress per flavor on every poke; succeed at the chosen target.

    On Kubernetes, admission is read from the workflow's pods and their Kueue Workloads (the
    workflow is ``Running`` while pods still wait for quota), queue positions from Kueue's
    visibility API; an evicted (preempted) batch is reported as such and waits for Argo's
    retry, and the time of every preemption is logged (from Kueue's events, which outlive the
    preempted pod). A failed workflow fails the task with the failing batches' messages; a
    batch that cannot start (a missing Secret, LocalQueue or ClusterQueue, an unknown image)
    fails it at once, naming what is missing, and stops the workflow.

    :param submitted: what ``ArgoSubmitOperator`` returned (``submit.output``): the workflow,
        and the backend it went to with that backend's settings, so the wait reads the same
        place even when the submit task overrode its connection's backend.
    :param workflow_name: a workflow to wait for instead, on this task's own connection.
    :param target: ``finished`` (every batch done) or ``admitted`` (every batch got quota).
    :param queue_wait_timeout: fail when batches have waited this long for quota with none of
        the workflow's batches running. Separate from ``timeout``, which bounds the whole wait,
        so a full queue and a slow run are told apart.
    :param deferrable: wait in the triggerer (``KueueWaitTrigger``), the default. Works on both
        backends (on the local one the trigger reads the local status file), and under
        ``dag.test()`` / ``airflow dags test``, which run triggers in process. Without a
        triggerer, pass ``False``: the sensor then pokes in ``poke`` mode, holding a worker slot.
        ``mode="reschedule"`` is still accepted but not the default: Airflow's scheduler can fail
        a rescheduled sensor on the stale executor event of its previous poke
        (apache/airflow#71172), which costs a retry and its ``retry_delay``.
    :param stop_on_kill: stop the workflow when this task is killed (also while deferred), and
        when the wait gives up on it (a batch that cannot start, the queue-wait timeout).
    """

    template_fields: Sequence[str] = ("submitted", "workflow_name", "target", "store_uri")
    ui_color = "#fff3cd"

    def __init__(
        self,
        *,
        submitted: dict[str, Any] | None = None,
        workflow_name: str | None = None,
        target: str = "finished",
        queue_wait_timeout: timedelta | float | None = None,
        deferrable: bool = True,
        stop_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "poke")  # reschedule mode meets apache/airflow#71172
        kwargs.setdefault("poke_interval", 10)
        super().__init__(**kwargs)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if (submitted is None) == (workflow_name is None):
            raise ValueError("give submitted=submit.output, or a workflow_name (not both)")
        self.submitted = submitted
        self.workflow_name = workflow_name
        self.target = target
        self.queue_wait_timeout = (
            queue_wait_timeout.total_seconds()
            if isinstance(queue_wait_timeout, timedelta)
            else queue_wait_timeout
        )
        self.deferrable = deferrable
        self.stop_on_kill = stop_on_kill
        self._seen: Seen = {}

    @property
    def _workflow(self) -> str:
        return str(self.submitted["workflow_name"]) if self.submitted else str(self.workflow_name)

    def _backend(self) -> WorkflowBackend:
        """The backend the workflow was submitted to, rebuilt from what the submit returned;
        without it, this task's connection's."""
        if not self.submitted:
            return self.hook.get_backend()
        return get_backend(self.submitted["backend"], **self.submitted["backend_config"])

    # --- poke mode (and reschedule mode, when asked for) ----------------------------------
    def poke(self, context: Context) -> PokeReturnValue | bool:
        status = self._backend().status(self._workflow)
        self._log_progress(status)
        return self._decide(status)

    def _decide(self, status: WorkflowStatus) -> PokeReturnValue | bool:
        verdict = evaluate(status, self.target, self.queue_wait_timeout)
        if verdict.state == WaitState.DONE or verdict.over:
            self._summarise(status)
        if verdict.state == WaitState.DONE:
            return PokeReturnValue(is_done=True, xcom_value=summary(status))
        if verdict.over:
            self._fail(verdict.state, verdict.message)
        return False

    def _fail(self, state: WaitState, message: str) -> None:
        """Fail the task. A blocked or queue-starved workflow is stopped first (unless
        ``stop_on_kill`` is off), so that its pods neither hold quota nor outlive the task;
        a stop that fails is logged, and the task still fails with the reason."""
        if state.gives_up and self.stop_on_kill:
            self.log.info("Stopping workflow %s: %s", self._workflow, state)
            try:
                self._backend().stop(self._workflow)
            except Exception as exc:  # noqa: BLE001 (the failure's message matters more)
                self.log.warning("Could not stop workflow %s: %s", self._workflow, exc)
        raise AirflowFailException(message)

    def _log_progress(self, status: WorkflowStatus) -> None:
        """Each batch's transitions since the last poke, then where the workflow stands."""
        lines, self._seen = transitions(self._seen, status)
        for line in [*lines, *progress_lines(status)]:
            self.log.info("%s", line)

    def _summarise(self, status: WorkflowStatus) -> None:
        """The end of a try: one line per batch (queued, started, finished, time in queue),
        and the same timeline written beside the job, so that it outlives this try's log."""
        for line in timeline_lines(status):
            self.log.info("%s", line)
        manifest_uri = (self.submitted or {}).get("manifest_uri")
        if not manifest_uri:
            return  # waiting by workflow name alone: no job to write beside
        try:
            uri = write_timeline(str(manifest_uri), status)
        except Exception as exc:  # noqa: BLE001 (the log above holds the same record)
            self.log.warning("Could not write the timeline of %s: %s", self._workflow, exc)
        else:
            self.log.info("Timeline written to %s", uri)
        self._learn(str(manifest_uri), status)

    def _learn(self, manifest_uri: str, status: WorkflowStatus) -> None:
        """Add the finished run to its store's placement history (``flavor="auto"`` learns
        from it); a history that cannot be written costs only that."""
        if not status.phase.finished:
            return
        config = (self.submitted or {}).get("backend_config") or {}
        try:
            uri = remember_run(manifest_uri, status, config.get("store_uri") or self.hook.store_uri)
        except Exception as exc:  # noqa: BLE001 (the run itself is done and recorded)
            self.log.warning("Could not add %s to the placement history: %s", self._workflow, exc)
        else:
            self.log.info("Placement history entry written to %s", uri)

    # --- deferrable mode -------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from hybrid_provider.triggers.kueue_wait import KueueWaitTrigger

        backend = self._backend()
        status = backend.status(self._workflow)  # fail fast on a missing workflow
        self._log_progress(status)
        decided = self._decide(status)
        if isinstance(decided, PokeReturnValue):
            return decided.xcom_value
        self.defer(
            trigger=KueueWaitTrigger(
                workflow_name=self._workflow,
                backend=backend.name,
                backend_config=backend.config(),
                target=self.target,
                queue_wait_timeout=self.queue_wait_timeout,
                poll_interval=float(self.poke_interval),
                stop_on_kill=self.stop_on_kill,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed after the trigger fired: summarise the whole run's batches, then decide.

        The triggerer's lines are progress only; this final section of the task log is the
        record of every batch, as the last poke's is in poke mode.
        """
        state, message = _event_state(event), event.get("message", "")
        try:
            self._summarise(self._backend().status(self._workflow))
        except Exception as exc:  # noqa: BLE001 (the trigger's verdict stands without it)
            self.log.warning("Could not read the final status of %s: %s", self._workflow, exc)
        if state == WaitState.DONE:
            self.log.info("%s", message)
            return event.get("summary")
        self._fail(state, message or f"waiting for {self._workflow} failed")

    def on_kill(self) -> None:
        if self.stop_on_kill:
            self.log.info("Task killed: stopping workflow %s", self._workflow)
            self._backend().stop(self._workflow)


def _event_state(event: dict[str, Any]) -> WaitState:
    """The state a trigger event reports; an unknown one (another release's) counts as failed."""
    try:
        return WaitState(str(event.get("state")))
    except ValueError:
        return WaitState.FAILED


def timeline_lines(status: WorkflowStatus) -> list[str]:
    """One line per batch: when it was queued, started and finished, and how long it queued
    (UTC; the last attempt's, with the count of attempts and preemptions)."""

    lines = [f"Timeline of {status.name} ({status.phase.value}, {status.progress} done; UTC):"]
    for b in status.batches:
        queued = (
            f" after {(b.started_at - b.pending_since).total_seconds():.1f} s in queue"
            if b.started_at and b.pending_since
            else ""
        )
        ran = f" ({b.duration_s:.1f} s)" if b.duration_s is not None else ""
        lines.append(
            f"  {batch_name(b.index, status.total)} {b.flavor} {b.state}: queued "
            f"{clock(b.pending_since)}, started {clock(b.started_at)}{queued}, finished "
            f"{clock(b.finished_at)}{ran}; {b.attempts} attempt(s), "
            f"{len(b.preemptions)} preemption(s)"
        )
    return lines


def _placement_lines(manifest_uri: str) -> list[str] | None:
    """The ``flavor="auto"`` decision and its reasons, when the submit made one."""
    decision = read_decision(manifest_uri)
    return decision.lines() if decision else None


def write_timeline(manifest_uri: str, status: WorkflowStatus) -> str:
    """Every batch's status, as the wait last saw it, at ``<job>/results/timeline.json``
    (read by the report); returns its URI."""
    uri = artifact_uri(store.normalise_uri(manifest_uri), TIMELINE_JSON)
    store.write_json_atomic(
        uri,
        {
            "workflow": status.name,
            "backend": status.backend,
            "phase": status.phase.value,
            "written_at": datetime.now(timezone.utc).isoformat(),
            "batches": [b.model_dump(mode="json") for b in status.batches],
            "placement": _placement_lines(manifest_uri),
        },
    )
    return uri
