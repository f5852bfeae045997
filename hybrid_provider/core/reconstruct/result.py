"""The published result of a job (``results/reconstruction.json``), as one typed record.

The reconstruct task writes it; the report, the metrics exporter and the XCom read it. A
record that does not validate (lengths that disagree, a missing field) is refused by name
instead of turning into a half-drawn report or a wrong series.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, model_validator

from hybrid_provider.core import layout, store
from hybrid_provider.core.manifest import artifact_uri
from hybrid_provider.core.reconstruct.combine import Reconstruction


class ReconstructionResult(BaseModel):
    """The values of one job's observables, with their standard errors and how they were made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest_uri: str
    observables: list[str]
    values: list[float]
    std_errors: list[float]
    mode: str
    shots: int | None
    array_module: str
    seconds: float
    mixed_software: dict[str, dict[str, list[int]]] = {}
    finished_at: datetime

    @model_validator(mode="after")
    def _one_value_per_observable(self) -> ReconstructionResult:
        if not len(self.observables) == len(self.values) == len(self.std_errors):
            raise ValueError("observables, values and standard errors differ in number")
        return self

    @classmethod
    def of(cls, manifest_uri: str, reconstruction: Reconstruction) -> ReconstructionResult:
        return cls(
            manifest_uri=manifest_uri,
            **reconstruction._asdict(),
            finished_at=datetime.now(timezone.utc),
        )


def result_uri(manifest_uri: str) -> str:
    return artifact_uri(store.normalise_uri(manifest_uri), layout.RECONSTRUCTION_RESULT)


def write_result(result: ReconstructionResult) -> str:
    """Publish the result beside its job, atomically; returns where."""
    uri = result_uri(result.manifest_uri)
    store.write_json_atomic(uri, result.model_dump(mode="json"))
    return uri


def read_result(uri: str) -> ReconstructionResult:
    """The result stored at ``uri``; ArtifactError when it is missing or malformed."""
    return store.read_model(
        uri, ReconstructionResult, "reconstruction result", "run the reconstruct task again"
    )
