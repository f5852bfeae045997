"""A run's way through the queue, kept beside its job (``results/timeline.json``).

The wait writes it on every poke (so it outlives the task's tries and their logs); the report
draws it and the metrics exporter counts queue waits and attempts from it, for any backend.
One typed record, so a reader never meets a half-known shape.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict

from hybrid_provider.backends.status import BatchStatus, WorkflowPhase, WorkflowStatus
from hybrid_provider.core import layout, store
from hybrid_provider.core.manifest import artifact_uri


class Timeline(BaseModel):
    """Every batch's status as the wait last saw it, and the placement decision, if any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str
    backend: str
    phase: WorkflowPhase
    written_at: datetime
    batches: list[BatchStatus]
    #: The ``flavor="auto"`` decision and its reasons; empty when the flavor was named.
    placement: list[str] = []

    @classmethod
    def of(cls, status: WorkflowStatus, placement: list[str] | None = None) -> Timeline:
        return cls(
            workflow=status.name,
            backend=status.backend,
            phase=status.phase,
            written_at=datetime.now(timezone.utc),
            batches=status.batches,
            placement=placement or [],
        )


def timeline_uri(manifest_uri: str) -> str:
    return artifact_uri(store.normalise_uri(manifest_uri), layout.TIMELINE)


def write_timeline(manifest_uri: str, timeline: Timeline) -> str:
    uri = timeline_uri(manifest_uri)
    store.write_json_atomic(uri, timeline.model_dump(mode="json"))
    return uri


def read_timeline(uri: str) -> Timeline:
    """The timeline at ``uri``; ArtifactError when it is missing or malformed."""
    return store.read_model(
        uri, Timeline, "timeline", "the wait writes it again on its next poke; rerun the wait task"
    )
