"""The result record of a batch: what it computed, from what, where, and its outcomes' checksums.

Written after the outcomes it checksums and sealed with its own checksum, so a record that
reads back means a finished batch whose numbers and provenance are those written.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.manifest import artifact_uri
from hybrid_provider.core.provenance import BatchProvenance

RECORD_SCHEMA_VERSION = 2


class BatchRecord(BaseModel):
    """One finished batch; ``options.identity()`` is what makes it reusable by a rerun."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = RECORD_SCHEMA_VERSION
    batch: int
    batch_sha256: str = Field(description="checksum of the subexperiments the batch ran")
    options: ExecutionOptions
    outcomes_sha256: str = Field(description="checksum of the outcomes file")
    outcomes_digest: str = Field(description="checksum of the outcomes' content (Outcomes.digest)")
    num_subexperiments: int
    duration_s: float
    finished_at: datetime
    provenance: BatchProvenance


def outcomes_uri(manifest_uri: str, index: int) -> str:
    return artifact_uri(manifest_uri, layout.batch_outcomes(index))


def record_uri(manifest_uri: str, index: int) -> str:
    return artifact_uri(manifest_uri, layout.batch_record(index))


def write_record(manifest_uri: str, record: BatchRecord) -> None:
    store.write_sealed_json(record_uri(manifest_uri, record.batch), record.model_dump(mode="json"))


def read_record(manifest_uri: str, index: int) -> BatchRecord:
    """The stored record of batch ``index``; ArtifactError when missing, changed or malformed."""
    uri = record_uri(manifest_uri, index)
    if not store.exists(uri):
        raise ArtifactError(f"batch {index} has no result yet ({uri})")
    what = f"result record of batch {index}"
    payload = store.read_json(uri, what=what)
    if not isinstance(payload, dict) or payload.get("schema_version") != RECORD_SCHEMA_VERSION:
        raise ArtifactError(f"{what} was written by another release; run the batch again")
    try:
        record = BatchRecord.model_validate(store.unseal(payload, uri, what))
    except ValueError as exc:
        raise ArtifactError(f"{what} is malformed; run the batch again") from exc
    if record.batch != index:
        raise ArtifactError(f"{what} belongs to batch {record.batch}; run the batch again")
    return record
