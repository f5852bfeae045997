"""Run a batch on an IBM Quantum device through Qiskit Runtime, with jobs that survive retries.

``sampler="ibm-runtime:ibm_torino"`` runs a batch's subexperiments on that device;
``ibm-runtime:fake_torino`` on the fake device in the Runtime's local testing mode (see
:mod:`.ibm_runtime_local`); plain ``ibm-runtime`` on the least busy device of the account.

- **ISA circuits.** Each subcircuit gets one layout on the device's best connected qubits for
  its width (readout and two-qubit gate errors), pinned in the store for the whole cut job, so
  every subexperiment of it, in any batch, runs on the same qubits and the results combine.
- **Batch mode.** A batch's jobs (one per distinct shot count) are sent in a Runtime ``Batch``.
- **Jobs that survive.** Each job id is written to the store beside the batch's result the
  moment it exists (:func:`ticket_uri`); a rerun of the batch (a retried pod, a new task try)
  finds it and waits for that job instead of paying for the same shots again.
- **Queue time is reported.** While the provider queues a job, the batch logs "waiting on the
  QPU provider" with the queue position where the API gives one, and keeps it in the ticket.

Where jobs go is :mod:`.ibm_runtime_providers`; the ISA circuits are :mod:`.isa`'s. The account
(a pod gets it from a Secret, the local backend from the ``ibm_runtime`` connection) is never
written, logged or put into an error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from qiskit import QuantumCircuit

from hybrid_provider.core import layout as store_layout
from hybrid_provider.core import store
from hybrid_provider.core.cut.experiments import SubsystemChoices
from hybrid_provider.core.errors import ArtifactError, ProviderError
from hybrid_provider.core.execute.ibm_runtime_providers import (
    CloudProvider,
    LocalProvider,
    Provider,
    ProviderJob,
    credentials_hidden,
    open_provider,
)
from hybrid_provider.core.execute.isa import isa_circuits, pinned_layouts
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes, build_outcomes
from hybrid_provider.core.execute.runtime_options import (
    RuntimeOptions,
)
from hybrid_provider.core.execute.samplers import distributions_of
from hybrid_provider.core.manifest import JobManifest, artifact_uri
from hybrid_provider.core.provenance import IsaCircuits, ProviderJobs

log = logging.getLogger(__name__)

WAITING_STATES = frozenset({"INITIALIZING", "VALIDATING", "QUEUED"})
FAILED_STATES = frozenset({"ERROR", "CANCELLED"})
TICKET_SCHEMA_VERSION = 1


# --- the ticket: a batch's provider jobs, in the store beside its result ---------------------


class TicketJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shots: int
    job_id: str


class Ticket(BaseModel):
    """A batch's provider jobs, written the moment each job id exists; read back by a rerun."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = TICKET_SCHEMA_VERSION
    batch: int
    batch_sha256: str
    options_sha256: str = Field(description="of the execution options' identity")
    provider: str
    backend: str
    jobs: list[TicketJob] = Field(default_factory=list)
    isa: list[IsaCircuits]
    submitted_at: datetime
    failed: str | None = Field(default=None, description="why the provider ended a job")
    state: str = Field(default="SUBMITTED", description="the provider's last word on the jobs")
    queue_position: int | None = None

    @property
    def job_list(self) -> str:
        return ", ".join(job.job_id for job in self.jobs) or "(none yet)"


def ticket_uri(manifest_uri: str, index: int) -> str:
    """Beside the batch's result record (``results/batch-NNNNN.json``)."""
    return artifact_uri(manifest_uri, store_layout.provider_jobs(index))


def options_sha256(options: ExecutionOptions) -> str:
    identity = json.dumps(options.identity(), sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()


def read_ticket(
    manifest_uri: str, manifest: JobManifest, index: int, options: ExecutionOptions
) -> Ticket | None:
    """The batch's ticket when it is for these subexperiments and options and not failed."""
    ticket = stored_ticket(manifest_uri, index)
    if ticket is None:
        return None
    same_batch = ticket.batch_sha256 == manifest.batches[index].sha256
    if not same_batch or ticket.options_sha256 != options_sha256(options):
        return None
    if ticket.failed:
        log.info(
            "batch %d: its earlier provider job failed (%s); submitting again", index, ticket.failed
        )
        return None
    return ticket


def stored_ticket(manifest_uri: str, index: int) -> Ticket | None:
    """Batch ``index``'s ticket as stored; None when there is none or it cannot be read."""
    uri = ticket_uri(manifest_uri, index)
    if not store.exists(uri):
        return None
    try:
        return Ticket.model_validate(store.read_sealed_json(uri, f"provider jobs of batch {index}"))
    except (ArtifactError, ValueError) as exc:
        log.warning("batch %d: ignoring its provider jobs file (%s)", index, exc)
        return None


def write_ticket(manifest_uri: str, ticket: Ticket) -> None:
    store.write_sealed_json(ticket_uri(manifest_uri, ticket.batch), ticket.model_dump(mode="json"))


# --- running a batch --------------------------------------------------------------------------


class _BatchWork(NamedTuple):
    """What one batch sends: the measured subexperiments, their subcircuits and shot counts."""

    manifest_uri: str
    manifest: JobManifest
    batch: int
    circuits: list[QuantumCircuit]
    labels: list[str]
    counts: list[int]


def run_runtime_batch(
    manifest_uri: str,
    manifest: JobManifest,
    index: int,
    segments: Sequence[SubsystemChoices],
    options: ExecutionOptions,
    shots: np.ndarray | None,
) -> tuple[Outcomes, ProviderJobs]:
    """The batch's outcomes from the provider: reattached to its jobs, or from new ones.

    ``shots`` gives each measured subexperiment its count (weighted allocation); by default
    each gets ``options.shots``.
    """
    from hybrid_provider.core.execute.choices import measured_subexperiments

    circuits, bits = measured_subexperiments(segments)
    labels = [s.label for s in segments for _ in range(len(s.terms) * len(s.groups))]
    counts = [options.shots or 0] * len(circuits) if shots is None else [int(n) for n in shots]
    work = _BatchWork(manifest_uri, manifest, index, circuits, labels, counts)
    provider = open_provider(options.sampler)
    ticket = read_ticket(manifest_uri, manifest, index, options)
    groups = _shot_groups(counts)
    submitted = {job.shots for job in ticket.jobs} if ticket else set()
    missing = [count for count in groups if count not in submitted]
    if ticket is not None:
        log.info("batch %d: reattaching to provider job(s) %s", index, ticket.job_list)
    if missing or ticket is None:
        ticket = _submit(work, options, provider, ticket, groups, missing)
    by_position: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for job in ticket.jobs:
        handle = _reattach(manifest_uri, provider, ticket, job.job_id)
        result = _wait(manifest_uri, handle, ticket, provider.poll_seconds)
        by_position.update(zip(groups[job.shots], distributions_of(result), strict=True))
    distributions = [by_position[position] for position in range(len(circuits))]
    jobs = ProviderJobs(
        provider=ticket.provider,
        backend=ticket.backend,
        job_ids=[job.job_id for job in ticket.jobs],
        submissions=len(missing),
        isa=ticket.isa,
    )
    return build_outcomes(distributions, counts, bits), jobs


def _reattach(manifest_uri: str, provider: Provider, ticket: Ticket, job_id: str) -> ProviderJob:
    """The provider's job of that id; one it does not know fails the batch, and the next run
    of the batch submits a new one."""
    try:
        return provider.job(job_id)
    except ProviderError as exc:
        reason = f"provider job {job_id} is gone: {exc}"
        write_ticket(manifest_uri, ticket.model_copy(update={"failed": reason, "state": "GONE"}))
        raise ProviderError(
            f"batch {ticket.batch}: {reason}. Run the batch again to submit a new job"
        ) from None


def _shot_groups(counts: list[int]) -> dict[int, list[int]]:
    """Positions of the circuits by shot count: one job per count (the Runtime wants one)."""
    groups: dict[int, list[int]] = {}
    for position, count in enumerate(counts):
        groups.setdefault(count, []).append(position)
    return dict(sorted(groups.items()))


def _submit(
    work: _BatchWork,
    options: ExecutionOptions,
    provider: Provider,
    ticket: Ticket | None,
    groups: dict[int, list[int]],
    missing: list[int],
) -> Ticket:
    """Make the ISA circuits and submit the missing jobs, writing each id as soon as it exists."""
    runtime = options.runtime or RuntimeOptions()
    layouts = pinned_layouts(work.manifest_uri, work.manifest, provider.backend, work.labels)
    isa = isa_circuits(
        work.circuits, work.labels, provider.backend, runtime, layouts=layouts, seed=options.seed
    )
    ticket = ticket or Ticket(
        batch=work.batch,
        batch_sha256=work.manifest.batches[work.batch].sha256,
        options_sha256=options_sha256(options),
        provider=provider.name,
        backend=provider.backend.name,
        isa=isa.summaries,
        submitted_at=datetime.now(timezone.utc),
    )
    sampler_options = {**runtime.sampler_options(), **_seed_options(provider, options, work.batch)}
    with provider.batch() as mode:
        for count in missing:
            pubs = [(isa.circuits[p], None, count) for p in groups[count]]
            job = provider.submit(mode, pubs, sampler_options)
            ticket = ticket.model_copy(
                update={"jobs": [*ticket.jobs, TicketJob(shots=count, job_id=job.job_id())]}
            )
            write_ticket(work.manifest_uri, ticket)
            log.info(
                "batch %d: submitted provider job %s (%d circuits x %d shots) to %s",
                work.batch,
                job.job_id(),
                len(pubs),
                count,
                ticket.backend,
            )
    return ticket


def _seed_options(provider: Provider, options: ExecutionOptions, index: int) -> dict[str, Any]:
    """Local testing mode simulates: seed it from the batch's seed so a rerun draws the same."""
    if not isinstance(provider, LocalProvider):
        return {}
    seed = int(np.random.SeedSequence([options.seed, index]).generate_state(1)[0])
    return {"simulator": {"seed_simulator": seed}}


def waiting_reason(job_id: str, position: int | None) -> str:
    """The one line a person reads while the provider queues a job."""
    where = f", position {position} in the provider's queue" if position is not None else ""
    return f"waiting on the QPU provider (job {job_id}{where})"


def _wait(manifest_uri: str, job: ProviderJob, ticket: Ticket, poll_seconds: float) -> Any:
    """The job's result once it is done; ProviderError when the provider failed or cancelled it."""
    last: tuple[str, int | None] | None = None
    while True:
        with credentials_hidden():
            state = job.status()
            position = job.queue_position() if state in WAITING_STATES else None
        if state == "DONE":
            with credentials_hidden():
                return job.result()
        if state in FAILED_STATES:
            with credentials_hidden():
                message = job.error_message()
            reason = f"provider job {job.job_id()} ended {state}: {message}"
            write_ticket(manifest_uri, ticket.model_copy(update={"failed": reason, "state": state}))
            raise ProviderError(
                f"batch {ticket.batch}: {reason}. Run the batch again to submit a new job"
            )
        if (state, position) != last:
            if state in WAITING_STATES:
                log.info("batch %d: %s", ticket.batch, waiting_reason(job.job_id(), position))
            else:
                log.info("batch %d: provider job %s is %s", ticket.batch, job.job_id(), state)
            write_ticket(
                manifest_uri, ticket.model_copy(update={"state": state, "queue_position": position})
            )
            last = (state, position)
        time.sleep(poll_seconds)


def provider_wait(manifest_uri: str, index: int) -> str | None:
    """The status reason of a running batch whose provider queues its job; None otherwise."""
    ticket = stored_ticket(manifest_uri, index)
    if ticket is None or ticket.failed or ticket.state not in WAITING_STATES or not ticket.jobs:
        return None
    return waiting_reason(ticket.jobs[-1].job_id, ticket.queue_position)


def cancel_batch_jobs(manifest_uri: str, index: int) -> list[str]:
    """Cancel the provider jobs of batch ``index`` (a killed task); returns their ids."""
    ticket = stored_ticket(manifest_uri, index)
    if ticket is None:
        return []
    provider: Provider = (
        LocalProvider(ticket.backend)
        if ticket.provider == LocalProvider.name
        else CloudProvider(ticket.backend)
    )
    for job in ticket.jobs:
        with credentials_hidden():
            provider.job(job.job_id).cancel()
    return [job.job_id for job in ticket.jobs]
