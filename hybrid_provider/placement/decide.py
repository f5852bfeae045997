"""One decision for a submit, shared by the operator and the CLI: ask the backend, read the
history, place, and keep the decision beside the job (``results/placement.json``) for the
wait's timeline and the report."""

from __future__ import annotations

from typing import Any

from hybrid_provider.backends.base import ReportsTelemetry
from hybrid_provider.backends.spec import Replacement, WorkflowSpec, compile_spec
from hybrid_provider.backends.status import BatchPhase, WorkflowStatus
from hybrid_provider.constants import Flavor
from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.record import read_record
from hybrid_provider.core.execute.runtime_options import is_runtime_sampler
from hybrid_provider.core.manifest import JobManifest, artifact_uri, load_manifest
from hybrid_provider.placement.history import History, load_history, record_run, run_record
from hybrid_provider.placement.policy import AUTO, JobShape, Placement, place

PLACEMENT_JSON = "results/placement.json"
#: A batch waiting this long for quota moves to another eligible flavor with a free slot.
DEFAULT_REPLACE_AFTER_S = 300.0


def decide(
    backend: Any,
    manifest: JobManifest,
    manifest_uri: str,
    *,
    mode: str,
    requested: str,
    store_uri: str,
    workflow: str,
    sampler: str = "aer",
) -> Placement:
    """The placement of a job's batches on ``backend``; ``requested`` is a flavor or ``auto``.

    An ``auto`` decision already made for this workflow (a retried submit) is reused, so the
    retry compiles the same spec and reattaches instead of being refused as another spec.

    Raises:
        InputError: ``auto`` on a backend without telemetry, or with no flavor to choose.
    """
    shape = JobShape.of(manifest, mode)
    if requested != AUTO:
        return place(shape, None, History(), requested)
    if is_runtime_sampler(sampler):
        return Placement(
            requested=AUTO,
            assignment=dict.fromkeys(shape.batches, Flavor.QPU),
            workflow=workflow,
            reasons=["the sampler runs on an IBM Quantum device: every batch takes the qpu "
                     "flavor, whose quota stands for the device's concurrency"],
        )  # fmt: skip
    earlier = read_decision(manifest_uri)
    if earlier is not None and earlier.workflow == workflow:
        return earlier
    if not isinstance(backend, ReportsTelemetry):
        raise InputError(
            f"the {backend.name} backend reports no queue telemetry, so flavor auto cannot "
            "place batches on it: name a flavor (cpu, gpu or qpu)"
        )
    placement = place(shape, backend.telemetry(), load_history(store_uri))
    return placement.model_copy(update={"workflow": workflow})


def placed_spec(
    backend: Any,
    manifest: JobManifest,
    manifest_uri: str,
    name: str,
    options: ExecutionOptions,
    *,
    requested: str,
    store_uri: str,
    replace_after: float | None = DEFAULT_REPLACE_AFTER_S,
    **compile_args: Any,
) -> tuple[WorkflowSpec, Placement]:
    """The spec to submit, each batch on the flavor :func:`decide` gave it (the operator's,
    the CLI's and the benchmark's one way from a manifest to a placed spec)."""
    placement = decide(backend, manifest, manifest_uri, mode=options.mode, requested=requested,
                       store_uri=store_uri, workflow=name, sampler=options.sampler)  # fmt: skip
    spec = compile_spec(
        manifest,
        manifest_uri,
        name,
        options,
        flavor=dict(placement.assignment),
        replacement=replacement_of(placement, replace_after),
        **compile_args,
    )
    return spec, placement


def replacement_of(placement: Placement, after_s: float | None) -> Replacement | None:
    """Re-placement for an ``auto`` decision: among the flavors it found eligible, after
    ``after_s`` of waiting (None: off). A named flavor never moves."""
    eligible = [f.flavor for f in placement.forecasts if not f.excluded]
    if placement.requested != AUTO or after_s is None or len(eligible) < 2:
        return None
    return Replacement(flavors=eligible, after_s=after_s)


def remember_run(manifest_uri: str, status: WorkflowStatus, store_uri: str) -> str:
    """Add a finished run to the store's history index (its mode from a stored batch record,
    the job's shape from its manifest); returns the entry's URI."""
    manifest = load_manifest(manifest_uri)
    done = [b.index for b in status.batches if b.phase == BatchPhase.SUCCEEDED]
    mode = read_record(manifest_uri, done[0]).options.mode if done else "unknown"
    return record_run(store_uri, run_record(status, manifest, mode))


def write_decision(manifest_uri: str, placement: Placement) -> str:
    """The decision beside the job; returns its URI."""
    uri = artifact_uri(store.normalise_uri(manifest_uri), PLACEMENT_JSON)
    store.write_json_atomic(uri, placement.model_dump(mode="json"))
    return uri


def read_decision(manifest_uri: str) -> Placement | None:
    """The job's placement decision, or None when its flavor was named (or it predates auto)."""
    uri = artifact_uri(store.normalise_uri(manifest_uri), PLACEMENT_JSON)
    try:
        return Placement.model_validate(store.read_json(uri, what="placement decision"))
    except ArtifactError:
        return None
