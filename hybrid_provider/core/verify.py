"""Re-execute stored batches and prove the stored outcomes are what the recorded inputs give.

Exact mode and seeded shot mode are deterministic for the same software on the same device,
so a rerun must reproduce a batch's outcomes bit for bit (compared by :meth:`Outcomes.digest`,
the arrays' content). When it does not, the report names the batch and the provenance fields
that differ between the stored run and this one, which usually says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute.batch import (
    check_batch_index,
    compute_batch,
    load_result,
)
from hybrid_provider.core.execute.record import BatchRecord, read_record
from hybrid_provider.core.execute.simulate import gpu_available
from hybrid_provider.core.manifest import JobManifest, load_manifest
from hybrid_provider.core.provenance import THREADS_VARIABLE, software


@dataclass(frozen=True)
class BatchCheck:
    """The verdict on one batch; ``differences`` maps a provenance field to (stored, rerun)."""

    index: int
    matched: bool
    reason: str
    differences: dict[str, tuple[str | None, str | None]]

    def line(self) -> str:
        verdict = "matches" if self.matched else "DIFFERS"
        differing = ", ".join(f"{k} {a} → {b}" for k, (a, b) in self.differences.items())
        return f"batch {self.index}: {verdict}: {self.reason}" + (
            f" (differs from the stored run: {differing})" if differing else ""
        )


class Verification(NamedTuple):
    manifest_uri: str
    checks: list[BatchCheck]

    @property
    def ok(self) -> bool:
        return all(check.matched for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {
            "manifest_uri": self.manifest_uri,
            "ok": self.ok,
            "batches": [asdict(check) for check in self.checks],
        }


def choose_batches(
    manifest: JobManifest,
    batches: Sequence[int] | None = None,
    sample: int | None = None,
    seed: int | None = None,
) -> list[int]:
    """The batches to rerun: those named, a random sample of ``sample``, or all of them."""
    if batches:
        for index in batches:
            check_batch_index(manifest, index)
        return sorted(set(batches))
    if sample is not None:
        if sample < 1:
            raise InputError(f"--sample needs at least 1 batch, got {sample}")
        count = min(sample, manifest.num_batches)
        return sorted(random.Random(seed).sample(range(manifest.num_batches), count))
    return list(range(manifest.num_batches))


def verify_job(
    manifest_uri: str,
    *,
    batches: Sequence[int] | None = None,
    sample: int | None = None,
    seed: int | None = None,
) -> Verification:
    """Rerun the chosen batches in this process (nothing is written) and compare outcomes."""
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = load_manifest(manifest_uri)
    chosen = choose_batches(manifest, batches, sample, seed)
    job_identity = _job_identity(manifest_uri, manifest)
    return Verification(
        manifest_uri, [_check(manifest_uri, manifest, i, job_identity) for i in chosen]
    )


def _job_identity(manifest_uri: str, manifest: JobManifest) -> str | None:
    """The options identity most of the job's batches share (None when no record is readable)."""
    counts: dict[str, int] = {}
    for index in range(manifest.num_batches):
        try:
            identity = _identity_key(read_record(manifest_uri, index))
        except ArtifactError:
            continue
        counts[identity] = counts.get(identity, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def _identity_key(record: BatchRecord) -> str:
    return json.dumps(record.options.identity(), sort_keys=True)


def _check(manifest_uri: str, manifest: JobManifest, index: int, job_identity: str | None):
    try:
        _, record = load_result(manifest_uri, manifest, index)
    except ArtifactError as exc:
        return BatchCheck(index, False, f"the stored result cannot be used: {exc}", {})
    if _identity_key(record) != job_identity:
        return BatchCheck(
            index,
            False,
            f"it ran with other options than the job's other batches: {record.options.identity()}",
            {},
        )
    differences = record.provenance.software.differences(software())
    if not record.provenance.seeds.reproducible:
        reason = f"not reproducible: sampler {record.provenance.simulator} draws its own randomness"
        return BatchCheck(index, False, reason, differences)
    device = _rerun_device(record.provenance.device)
    if device != record.provenance.device:
        differences["device"] = (record.provenance.device, device)
    with _aer_threads(record.provenance.threads):
        outcomes, _ = compute_batch(manifest_uri, manifest, index, record.options, device=device)
    if outcomes.digest() == record.outcomes_digest:
        return BatchCheck(index, True, "the rerun reproduces the stored outcomes", differences)
    return BatchCheck(index, False, "the rerun's outcomes differ from the stored ones", differences)


@contextlib.contextmanager
def _aer_threads(threads: int) -> Iterator[None]:
    """Run Aer with the thread count the batch ran with (see ``provenance.THREADS_VARIABLE``)."""
    before = os.environ.get(THREADS_VARIABLE)
    os.environ[THREADS_VARIABLE] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(THREADS_VARIABLE, None)
        else:
            os.environ[THREADS_VARIABLE] = before


def _rerun_device(recorded: str) -> str:
    return "gpu" if recorded == "gpu" and gpu_available() else "cpu"
