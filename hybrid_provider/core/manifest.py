"""The manifest: one JSON document that describes a cut job and checksums every file of it.

It is written last and atomically, so a job whose manifest exists is complete; readers
(executors, reconstruction, the sensor) start from the manifest URI alone. File locations in it
are relative to the job directory, so a job can be copied to another store and still read.

It also checksums itself (:func:`store.write_sealed_json`) and its structure is cross-checked
on every read (batch ranges, subsystem offsets, widths, observable labels), because a changed
index or label would otherwise turn into a wrong number with no error.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.provenance import JobProvenance

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 3
MANIFEST_NAME = layout.MANIFEST
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PAULI = re.compile(r"[IXYZ]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRef(_Model):
    """A file of the job, relative to the job folder, with the checksum it was written with."""

    path: str
    sha256: str

    @model_validator(mode="after")
    def _inside_the_job(self) -> FileRef:
        parts = self.path.split("/")
        if self.path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"file path {self.path!r} leaves the job folder")
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"checksum of {self.path!r} is not a sha256")
        return self


class BatchRef(_Model):
    """A contiguous range of the job's QPD term choices (subsystem-major), run as one unit.

    ``sha256`` identifies what the batch computes (the plan and its range), so a stored result
    is reused only by the batch that made it.
    """

    index: int
    first: int = Field(description="the batch's first term choice, counted across subsystems")
    count: int
    sha256: str


class SubsystemRef(_Model):
    """One subcircuit and where its work sits in the job's flat orders.

    Its term choices are ``first_choice .. first_choice + num_distinct - 1``; its measured
    subexperiments (one per choice and observable group, what a sampler runs) are
    ``offset + distinct * num_groups + group``. ``sha256`` digests the subcircuit with its cuts,
    so a batch that rebuilds it from the plan can tell it got the same one.
    """

    label: str
    width: int
    first_choice: int
    offset: int
    num_groups: int
    num_distinct: int
    num_cuts: int
    subobservables: list[str]
    sha256: str


class CutSpec(_Model):
    """Where the prepared circuit is cut: with it, enough to rebuild the partitioned problem.

    Either per-qubit partition labels (every gate spanning two partitions is cut), or the cuts
    automatic cut finding chose: instruction indices of cut gates, and for each cut wire the
    position of its marker in the circuit with the markers inserted, and its qubit.
    """

    partition_labels: str | None = None
    gate_cuts: list[int] = []
    wire_cuts: list[tuple[int, int]] = []


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
    """Everything a batch, the reconstruction and the report need to know about a cut job."""

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
    num_choices: int = Field(description="distinct QPD term choices over all subsystems")
    circuit: FileRef
    plan_circuit: FileRef
    choices: FileRef
    cut: CutSpec
    subsystems: list[SubsystemRef]
    batches: list[BatchRef]
    provenance: JobProvenance

    @property
    def num_batches(self) -> int:
        return len(self.batches)

    def segments(self, batch: BatchRef) -> list[tuple[SubsystemRef, int, int]]:
        """The batch's choices per subsystem: ``(subsystem, first distinct, end distinct)``."""
        end = batch.first + batch.count
        return [
            (s, max(batch.first, s.first_choice) - s.first_choice, min(end, top) - s.first_choice)
            for s in self.subsystems
            if batch.first < (top := s.first_choice + s.num_distinct) and s.first_choice < end
        ]

    def measured_range(self, batch: BatchRef) -> tuple[int, int]:
        """The batch's measured subexperiments (choice, then observable group), as a range."""
        segments = self.segments(batch)
        first, start, _ = segments[0]
        last, _, end = segments[-1]
        return first.offset + start * first.num_groups, last.offset + end * last.num_groups

    def num_measured(self, batch: BatchRef) -> int:
        first, end = self.measured_range(batch)
        return end - first

    @model_validator(mode="after")
    def _consistent(self) -> JobManifest:
        problems = [*_batch_problems(self), *_subsystem_problems(self), *_label_problems(self)]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _batch_problems(manifest: JobManifest) -> list[str]:
    problems, expected_first = [], 0
    for position, batch in enumerate(manifest.batches):
        if batch.index != position or batch.first != expected_first or batch.count < 1:
            problems.append(f"batch {position} does not continue the batches before it")
        expected_first = batch.first + batch.count
    if not manifest.batches or expected_first != manifest.num_choices:
        problems.append("the batches do not cover the term choices exactly once")
    return problems


def _subsystem_problems(manifest: JobManifest) -> list[str]:
    problems, expected_offset, expected_choice = [], 0, 0
    for subsystem in manifest.subsystems:
        if (
            subsystem.offset != expected_offset
            or subsystem.first_choice != expected_choice
            or min(subsystem.num_groups, subsystem.num_distinct) < 1
        ):
            problems.append(f"subsystem {subsystem.label} does not follow the ones before it")
        if subsystem.width != manifest.plan.subcircuit_widths.get(subsystem.label):
            problems.append(f"subsystem {subsystem.label} has a width the plan does not give")
        if len(subsystem.subobservables) != len(manifest.observables):
            problems.append(f"subsystem {subsystem.label} has one sub-observable per observable")
        expected_offset += subsystem.num_distinct * subsystem.num_groups
        expected_choice += subsystem.num_distinct
    if expected_offset != manifest.num_subexperiments or expected_choice != manifest.num_choices:
        problems.append("the subsystems do not account for every subexperiment")
    labels = [subsystem.label for subsystem in manifest.subsystems]
    if sorted(labels) != sorted(manifest.plan.subcircuit_widths):
        problems.append("the subsystems are not the plan's subcircuits")
    return problems


def _label_problems(manifest: JobManifest) -> list[str]:
    """Observables and sub-observables must agree qubit by qubit with the partition.

    Wire cuts add qubits and move observables onto them, and found cuts are summarised rather
    than labelled per qubit, so beyond the labels being Pauli strings this holds only for plans
    that cut gates at given partition labels.
    """
    observables = manifest.observables
    if not observables or not all(_PAULI.fullmatch(o) for o in observables):
        return ["the observables are not Pauli labels"]
    partition = manifest.plan.partition_labels
    per_qubit = len(partition) == manifest.plan.num_qubits and set(partition) <= set(
        manifest.plan.subcircuit_widths
    )
    if manifest.plan.num_wire_cuts or not per_qubit:
        return []
    if Counter(partition) != Counter(manifest.plan.subcircuit_widths):
        return ["the partition labels do not give the subcircuit widths"]
    problems = []
    for subsystem in manifest.subsystems:
        qubits = [q for q, label in enumerate(partition) if label == subsystem.label]
        for observable, sub in zip(observables, subsystem.subobservables, strict=False):
            if len(observable) != len(partition) or sub != "".join(
                observable[-1 - q] for q in reversed(qubits)
            ):
                problems.append(f"sub-observable {sub} of {subsystem.label} is not in {observable}")
    return problems


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
    payload = store.unseal(payload, manifest_uri, what="manifest")
    try:
        return JobManifest.model_validate(payload)
    except ValueError as exc:
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise ArtifactError(
            f"manifest {manifest_uri} is inconsistent ({first.removeprefix('Value error, ')}): "
            "re-run the cut step"
        ) from exc


def write_manifest(manifest_uri: str, manifest: JobManifest) -> None:
    store.write_sealed_json(manifest_uri, manifest.model_dump(mode="json"))


def read_artifact(manifest_uri: str, ref: FileRef, what: str) -> bytes:
    return store.read_verified(artifact_uri(manifest_uri, ref.path), ref.sha256, what)


class ChoiceTables(NamedTuple):
    """The plan's arrays: coefficients, and per subsystem (by label) each coefficient's term
    choice and each choice's QPD terms (one column per cut of the subsystem, in circuit order)."""

    coefficients: np.ndarray
    indices: dict[str, np.ndarray]
    terms: dict[str, np.ndarray]


def read_choices(manifest_uri: str, manifest: JobManifest) -> ChoiceTables:
    """The plan's arrays, checked against the manifest's structure.

    An index past a subsystem's distinct choices would otherwise gather the wrong factor, or
    fail deep inside NumPy.
    """
    import numpy as np  # here, not at import: specs, DAG files and provider info load this module

    data = read_artifact(manifest_uri, manifest.choices, "the plan's term choices")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            tables = ChoiceTables(
                npz["coefficients"],
                {s.label: npz[f"index_{s.label}"] for s in manifest.subsystems},
                {s.label: npz[f"terms_{s.label}"] for s in manifest.subsystems},
            )
    except (ValueError, KeyError, OSError) as exc:
        raise ArtifactError(f"the plan of {manifest_uri} cannot be read ({exc})") from exc
    size = manifest.plan.num_coefficients
    fits = tables.coefficients.shape == (size,) and all(
        _fits(tables.indices[s.label], tables.terms[s.label], s, size) for s in manifest.subsystems
    )
    if not fits:
        raise ArtifactError(f"the plan of {manifest_uri} does not fit its manifest: re-run the cut")
    return tables


def _fits(index: np.ndarray, terms: np.ndarray, subsystem: SubsystemRef, size: int) -> bool:
    return (
        index.shape == (size,)
        and index.dtype.kind in "iu"
        and index.min(initial=0) >= 0
        and index.max(initial=0) < subsystem.num_distinct
        and terms.shape == (subsystem.num_distinct, subsystem.num_cuts)
        and terms.dtype.kind in "iu"
    )
