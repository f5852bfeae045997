"""KueueWaitTrigger: the deferrable half of KueueWaitSensor, polling in the triggerer.

On Kubernetes it reads the workflow, pods, Workloads and queue positions with the async hook
(``AsyncArgoKueueHook``), never blocking the triggerer's loop; on the local backend it reads
the local run's status file in a worker thread. Both through the backend's ``astatus``.
It fires once: when the target is reached, the workflow failed, or the queue wait ran out.
When a user kills the deferred task (mark failed / success, clear), ``on_kill`` stops the
workflow if ``stop_on_kill`` is set; a triggerer restart does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from hybrid_provider.backends.base import get_backend
from hybrid_provider.backends.waiting import (
    Seen,
    WaitState,
    evaluate,
    poll_pauses,
    progress_lines,
    summary,
    transitions,
)
from hybrid_provider.core.errors import HybridQuantumError

#: The trigger never fires sooner than this after it started. Airflow 3.3's scheduler fails a
#: resumed task when it drains the executor's "success" for the worker that deferred only after
#: the trigger fired and the task was queued again (apache/airflow#67287; the fix covers the
#: scheduled state only). That event is drained within a few scheduler loops, so waiting this
#: long costs a run that ends at once ten seconds, and saves it a retry and a minute's delay.
MIN_EVENT_AGE_SECONDS = 10.0


class KueueWaitTrigger(BaseTrigger):
    """
    :param workflow_name: the workflow to watch.
    :param backend: ``kubernetes`` or ``local``.
    :param backend_config: the backend's constructor arguments (JSON-able; namespace resolved).
    :param target: ``admitted`` or ``finished``.
    :param queue_wait_timeout: seconds batches may wait for quota with none running.
    :param poll_interval: the longest pause between polls (they start at half a second and
        double up to it, so a short run is noticed soon after it ends).
    :param stop_on_kill: stop the workflow when a user kills the deferred task.
    """

    def __init__(
        self,
        workflow_name: str,
        backend: str,
        backend_config: dict[str, Any],
        target: str = "finished",
        queue_wait_timeout: float | None = None,
        poll_interval: float = 10.0,
        stop_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.workflow_name = workflow_name
        self.backend = backend
        self.backend_config = dict(backend_config)
        self.target = target
        self.queue_wait_timeout = queue_wait_timeout
        self.poll_interval = poll_interval
        self.stop_on_kill = stop_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workflow_name": self.workflow_name,
                "backend": self.backend,
                "backend_config": self.backend_config,
                "target": self.target,
                "queue_wait_timeout": self.queue_wait_timeout,
                "poll_interval": self.poll_interval,
                "stop_on_kill": self.stop_on_kill,
            },
        )

    def _backend(self):
        return get_backend(self.backend, **self.backend_config)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = self._backend()
        seen: Seen = {}
        pauses = poll_pauses(self.poll_interval)
        started = time.monotonic()
        while True:
            try:
                status = await backend.astatus(self.workflow_name)
            except HybridQuantumError as exc:
                yield TriggerEvent({"state": WaitState.UNREACHABLE.value, "message": str(exc)})
                return
            lines, seen = transitions(seen, status)
            for line in [*lines, *progress_lines(status)]:
                self.log.info("%s", line)
            verdict = evaluate(status, self.target, self.queue_wait_timeout)
            if verdict.over:
                await asyncio.sleep(max(0.0, started + MIN_EVENT_AGE_SECONDS - time.monotonic()))
                yield TriggerEvent(
                    {
                        "state": verdict.state.value,
                        "message": verdict.message,
                        "summary": summary(status),
                    }
                )
                return
            await asyncio.sleep(next(pauses))

    async def on_kill(self) -> None:
        if not self.stop_on_kill:
            return
        backend = self._backend()
        self.log.info("Task killed: stopping workflow %s", self.workflow_name)
        await backend.astop(self.workflow_name)
