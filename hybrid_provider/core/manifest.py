"""The manifest: one JSON document that describes a cut job and checksums every file of it.

It is written last and atomically, so a job whose manifest exists is complete; readers
(executors, reconstruction, the sensor) start from the manifest URI alone. File locations in it
are relative to the job directory, so a job can be copied to another store and still read.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Model):
    path: str
    sha256: str


class BatchRef(FileRef):
    index: int
    first: int = Field(description="flat index of the batch's first subexperiment")
    count: int


class SubsystemRef(_Model):
    label: str
    width: int
    offset: int
    num_groups: int
    num_distinct: int
    subobservables: list[str]


class CutSummary(_Model):
    num_qubits: int
    partition_labels: str
    num_cuts: int
    num_gate_cuts: int
    num_wire_cuts: int
    subcircuit_widths: dict[str, int]
    sampling_overhead: float
    num_coefficients: int


class JobManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    kind: str = "hybrid-quantum/cut-job"
    job_name: str
    created_at: datetime
    cut_seconds: float | None = Field(
        default=None, description="planning, generating and writing the job (the cut stage)"
    )
    fingerprint: str = Field(description="sha256 over the circuit, observables and cut options")
    observables: list[str]
    plan: CutSummary
    num_subexperiments: int
    num_subexperiments_redundant: int = Field(
        description="what generate_cutting_experiments would have produced"
    )
    circuit: FileRef
    reconstruction: FileRef
    subsystems: list[SubsystemRef]
    batches: list[BatchRef]

    @property
    def num_batches(self) -> int:
        return len(self.batches)


def job_uri_of(manifest_uri: str) -> str:
    return manifest_uri.rsplit("/", 1)[0]


def artifact_uri(manifest_uri: str, relative: str) -> str:
    return store.join(job_uri_of(manifest_uri), relative)


def load_manifest(manifest_uri: str) -> JobManifest:
    """Read and validate a manifest; the error says how to get a valid one."""
    manifest_uri = store.normalise_uri(manifest_uri)
    payload = store.read_json(manifest_uri, what="manifest")
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"manifest {manifest_uri} has schema version {version!r}, this release reads "
            f"{SCHEMA_VERSION}: re-run the cut step with this release"
        )
    try:
        return JobManifest.model_validate(payload)
    except ValueError as exc:
        raise ArtifactError(
            f"manifest {manifest_uri} is malformed ({exc.__class__.__name__}): re-run the cut step"
        ) from exc


def read_artifact(manifest_uri: str, ref: FileRef, what: str) -> bytes:
    return store.read_verified(artifact_uri(manifest_uri, ref.path), ref.sha256, what)
