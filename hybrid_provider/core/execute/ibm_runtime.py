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

Credentials come from ``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_CHANNEL`` and ``QISKIT_IBM_INSTANCE``
(a pod gets them from a Secret, the local backend from the ``ibm_runtime`` connection) and are
never written, logged or put into an error message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from qiskit import QuantumCircuit

from hybrid_provider.core import store
from hybrid_provider.core.cut.experiments import SubsystemChoices
from hybrid_provider.core.errors import ArtifactError, BackendError, InputError, ProviderError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes, build_outcomes
from hybrid_provider.core.execute.runtime_options import (
    CHANNEL_VARIABLE,
    DEFAULT_CHANNEL,
    INSTANCE_VARIABLE,
    PREFIX,
    TOKEN_VARIABLE,
    RuntimeOptions,
    device_name,
    is_local,
)
from hybrid_provider.core.execute.samplers import distributions_of
from hybrid_provider.core.manifest import JobManifest, artifact_uri
from hybrid_provider.core.provenance import IsaCircuits, ProviderJobs

log = logging.getLogger(__name__)

#: Seconds between two status questions to the provider (local jobs are asked more often).
POLL_SECONDS = float(os.environ.get("HYBRID_QUANTUM_IBM_POLL_S", "10"))
LOCAL_POLL_SECONDS = 0.2
WAITING_STATES = frozenset({"INITIALIZING", "VALIDATING", "QUEUED"})
FAILED_STATES = frozenset({"ERROR", "CANCELLED"})
TICKET_SCHEMA_VERSION = 1


# --- the provider: a real account or local testing mode, one set of questions ---------------


class ProviderJob(Protocol):
    """What a batch asks of one provider job, real (``RuntimeJobV2``) or local."""

    def job_id(self) -> str: ...
    def status(self) -> str: ...
    def error_message(self) -> str: ...
    def queue_position(self) -> int | None: ...
    def result(self) -> Any: ...
    def cancel(self) -> None: ...


class Provider(Protocol):
    """Where jobs go: ``backend`` is the device (its target makes the ISA circuits)."""

    name: str
    backend: Any
    poll_seconds: float

    def batch(self) -> contextlib.AbstractContextManager[Any]: ...
    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob: ...
    def job(self, job_id: str) -> ProviderJob: ...


class _CloudJob:
    """A Runtime job on IBM's servers, answering in the provider's own words."""

    def __init__(self, job: Any) -> None:
        self._job = job

    def job_id(self) -> str:
        return self._job.job_id()

    def status(self) -> str:
        status = self._job.status()
        return str(getattr(status, "name", status))

    def error_message(self) -> str:
        return self._job.error_message() or "no message from the provider"

    def queue_position(self) -> int | None:
        try:
            position = self._job.metrics().get("position_in_queue")
        except Exception:  # metrics are a courtesy: the job is still there without them
            return None
        return int(position) if position is not None else None

    def result(self) -> Any:
        return self._job.result()

    def cancel(self) -> None:
        self._job.cancel()


class CloudProvider:
    """A real IBM Quantum account: jobs run and wait on IBM's servers."""

    name = PREFIX
    poll_seconds = POLL_SECONDS

    def __init__(self, device: str | None) -> None:
        self.service = _service()
        with _credentials_hidden():
            self.backend = (
                self.service.backend(device)
                if device
                else self.service.least_busy(operational=True, simulator=False)
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[Any]:
        from qiskit_ibm_runtime import Batch

        with _credentials_hidden():
            mode = Batch(backend=self.backend)
        with mode:
            yield mode

    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob:
        with _credentials_hidden():
            return _CloudJob(_sampler(mode, options).run(pubs))

    def job(self, job_id: str) -> ProviderJob:
        with _credentials_hidden():
            return _CloudJob(self.service.job(job_id))


class LocalProvider:
    """Local testing mode on a fake device; each job in a detached process (see the module)."""

    name = f"{PREFIX}-local"
    poll_seconds = LOCAL_POLL_SECONDS

    def __init__(self, device: str) -> None:
        from hybrid_provider.core.execute.ibm_runtime_local import fake_device

        self.device = device
        self.backend = fake_device(device)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Any]:
        from qiskit_ibm_runtime import Batch

        with Batch(backend=self.backend) as mode:  # local mode: a Batch without a server id
            yield mode

    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob:
        from hybrid_provider.core.execute.ibm_runtime_local import submit_local_job

        return submit_local_job(self.device, pubs, options)

    def job(self, job_id: str) -> ProviderJob:
        from hybrid_provider.core.execute.ibm_runtime_local import local_job

        return local_job(job_id)


def open_provider(sampler: str) -> Provider:
    device = device_name(sampler)
    if device and is_local(sampler):
        return LocalProvider(device)
    return CloudProvider(device)


def _sampler(mode: Any, options: dict[str, Any]):
    from qiskit_ibm_runtime import SamplerV2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see docs/ibm-quantum.md
        return SamplerV2(mode=mode, options=options)


def _service():
    """The account, from the ``QISKIT_IBM_*`` variables or else the account saved on disk."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    settings = {
        "channel": os.environ.get(CHANNEL_VARIABLE) or DEFAULT_CHANNEL,
        "token": os.environ.get(TOKEN_VARIABLE) or None,
        "instance": os.environ.get(INSTANCE_VARIABLE) or None,
    }
    with _credentials_hidden():
        return QiskitRuntimeService(**{k: v for k, v in settings.items() if v})


@contextlib.contextmanager
def _credentials_hidden() -> Iterator[None]:
    """Turn the client's errors into one line that cannot hold the token.

    A refused account or request is bad input (not retried); anything else may be the network
    and is retried, and a retry reattaches to the batch's jobs.
    """
    try:
        yield
    except (InputError, ArtifactError, ProviderError):
        raise
    except Exception as exc:
        token = os.environ.get(TOKEN_VARIABLE) or ""
        what = f"{type(exc).__name__}: {str(exc).replace(token, '***') if token else exc}"
        if type(exc).__name__ in _REFUSED_ACCOUNT:
            raise InputError(
                f"IBM Quantum refused the account ({what}); check the ibm_runtime connection's "
                "channel, instance and token (docs/ibm-quantum.md)"
            ) from None
        if type(exc).__name__ in _REFUSED_REQUEST:
            raise InputError(f"IBM Quantum refused the request ({what})") from None
        if type(exc).__name__ == "RuntimeJobNotFound":
            raise ProviderError(f"IBM Quantum has no such job ({what})") from None
        raise BackendError(
            f"IBM Quantum did not answer ({what}); the batch is retried and reattaches to its jobs"
        ) from None


#: The client's errors for an account or a request it refuses (matched by name: the classes
#: move between qiskit-ibm-runtime releases). ``InvalidAccountError`` is left out: the client
#: also raises it when the network is down.
_REFUSED_ACCOUNT = frozenset({"IBMNotAuthorizedError", "AccountNotFoundError"})
_REFUSED_REQUEST = frozenset({"IBMInputValueError", "IBMBackendValueError", "ValidationError"})


# --- ISA circuits: one layout per subcircuit, on the device's best qubits ---------------------


def best_qubits(target: Any, width: int) -> list[int]:
    """``width`` connected physical qubits in a line with the least readout and gate error.

    A greedy walk from every qubit, each step to the neighbour whose two-qubit gate and readout
    errors add least; the cheapest complete walk wins (ties: the lowest qubit numbers).

    Raises:
        InputError: the device has no ``width`` connected qubits.
    """
    device = _Calibration.of(target)
    walks = [device.walk(start, width) for start in sorted(device.readout)]
    complete = [(score, path) for score, path in walks if len(path) == width]
    if not complete:
        raise InputError(
            f"the device has no {width} connected qubits for a subcircuit of that width; cut "
            "the circuit into narrower subcircuits (max_subcircuit_qubits)"
        )
    return min(complete)[1]


class _Calibration(NamedTuple):
    """Readout error per qubit and the best two-qubit gate error per coupled pair."""

    readout: dict[int, float]
    edges: dict[frozenset[int], float]

    @classmethod
    def of(cls, target: Any) -> _Calibration:
        readout = {qargs[0]: error for qargs, error in _errors(target, "measure").items()}
        edges: dict[frozenset[int], float] = {}
        for name in _two_qubit_gates(target):
            for qargs, error in _errors(target, name).items():
                pair = frozenset(qargs)
                edges[pair] = min(error, edges.get(pair, error))
        return cls(readout, edges)

    def walk(self, start: int, width: int) -> tuple[float, list[int]]:
        """The greedy line from ``start`` (shorter than ``width`` where it gets stuck)."""
        path, score = [start], self.readout[start]
        while len(path) < width:
            steps = [
                (error + self.readout.get(other, 0.0), other)
                for pair, error in self.edges.items()
                if path[-1] in pair
                for other in pair - {path[-1]}
                if other not in path
            ]
            if not steps:
                break
            cost, chosen = min(steps)
            path.append(chosen)
            score += cost
        return score, path


def _errors(target: Any, name: str) -> dict[tuple[int, ...], float]:
    """Error of each qargs of an operation (a missing error counts as none)."""
    return {
        tuple(qargs): float(getattr(props, "error", None) or 0.0)
        for qargs, props in target[name].items()
        if qargs is not None
    }


def _two_qubit_gates(target: Any) -> list[str]:
    return [
        name
        for name in target.operation_names
        if target.operation_from_name(name).num_qubits == 2 and name not in ("barrier",)
    ]


class IsaBatch(NamedTuple):
    circuits: list[QuantumCircuit]
    summaries: list[IsaCircuits]


def isa_circuits(
    circuits: list[QuantumCircuit],
    subsystems: list[str],
    backend: Any,
    runtime: RuntimeOptions,
    *,
    layouts: dict[str, list[int]],
    seed: int,
) -> IsaBatch:
    """Transpile each subcircuit's subexperiments once, all on that subcircuit's layout.

    ``subsystems`` names the subcircuit of each circuit; ``layouts`` gives each one's qubits.
    """
    from qiskit.transpiler import generate_preset_pass_manager

    isa: list[QuantumCircuit | None] = [None] * len(circuits)
    summaries = []
    for label in dict.fromkeys(subsystems):
        positions = [i for i, s in enumerate(subsystems) if s == label]
        manager = generate_preset_pass_manager(
            optimization_level=runtime.optimization_level,
            target=backend.target,
            initial_layout=layouts[label],
            seed_transpiler=seed,
        )
        transpiled = manager.run([circuits[i] for i in positions])
        for position, circuit in zip(positions, transpiled, strict=True):
            isa[position] = circuit
        summaries.append(
            IsaCircuits(
                subsystem=label,
                width=len(layouts[label]),
                layout=layouts[label],
                depth=max(c.depth() for c in transpiled),
                two_qubit_gates=max(_two_qubit_count(c) for c in transpiled),
            )
        )
    return IsaBatch([c for c in isa if c is not None], summaries)


def _two_qubit_count(circuit: QuantumCircuit) -> int:
    return sum(
        1
        for instruction in circuit.data
        if instruction.operation.num_qubits == 2
        and not getattr(instruction.operation, "_directive", False)
    )


def layout_uri(manifest_uri: str, backend: str, label: str) -> str:
    return artifact_uri(manifest_uri, f"results/ibm-runtime-layout-{backend}-{label}.json")


def pinned_layouts(
    manifest_uri: str, manifest: JobManifest, backend: Any, labels: list[str]
) -> dict[str, list[int]]:
    """Each subcircuit's layout: the one already pinned for this job and device, or a new one.

    The first batch to run chooses and pins it; later batches read it, so a recalibration of
    the device between batches cannot split one subcircuit over two sets of qubits.
    """
    widths = {s.label: s.width for s in manifest.subsystems}
    layouts = {}
    for label in dict.fromkeys(labels):
        uri = layout_uri(manifest_uri, backend.name, label)
        if store.exists(uri):
            layouts[label] = list(store.read_sealed_json(uri, "pinned layout")["layout"])
            continue
        layouts[label] = best_qubits(backend.target, widths[label])
        store.write_sealed_json(
            uri, {"backend": backend.name, "subsystem": label, "layout": layouts[label]}
        )
    return layouts


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
    return artifact_uri(manifest_uri, f"results/batch-{index:05d}.ibm-runtime.json")


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
        with _credentials_hidden():
            state = job.status()
            position = job.queue_position() if state in WAITING_STATES else None
        if state == "DONE":
            with _credentials_hidden():
                return job.result()
        if state in FAILED_STATES:
            with _credentials_hidden():
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
        with _credentials_hidden():
            provider.job(job.job_id).cancel()
    return [job.job_id for job in ticket.jobs]
