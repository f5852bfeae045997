"""What produced a job and each of its results: software, origin, executing environment, seeds.

Recorded where results are born (the cut stage in the manifest, each batch in its result
record), inside documents that carry their own checksum, so a night's numbers can be traced
to the software and the machine that made them and ``hybrid-quantum verify`` can say which of
these differ when a rerun does not match. Kept free of Qiskit and Airflow imports.
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Distributions whose version can change a number this project computes. Those not installed
#: are left out; any CuPy wheel (``cupy-cuda12x``, ``cupy-cuda13x``…) is recorded as ``cupy``.
NUMERIC_DISTRIBUTIONS = (
    "airflow-provider-hybrid-quantum",
    "qiskit",
    "qiskit-aer",
    "qiskit-aer-gpu",
    "qiskit-addon-cutting",
    "qiskit-ibm-runtime",
    "numpy",
    "scipy",
)

#: Environment variables a pod gets from the compiled workflow (downward API and Argo
#: variables) and a local worker from its runner; each fills one :class:`Executor` field.
EXECUTOR_ENVIRONMENT = {
    "workflow": "HYBRID_QUANTUM_WORKFLOW",
    "flavor": "HYBRID_QUANTUM_FLAVOR",
    "image": "HYBRID_QUANTUM_IMAGE",
    "pod": "HYBRID_QUANTUM_POD_NAME",
    "namespace": "HYBRID_QUANTUM_POD_NAMESPACE",
    "pod_uid": "HYBRID_QUANTUM_POD_UID",
    "node": "HYBRID_QUANTUM_NODE_NAME",
}

#: Threads Aer may use (0 or unset: every core). A batch records the resolved number: the
#: summation order inside a wide circuit's probabilities depends on it, so a bit-identical
#: rerun needs the same one.
THREADS_VARIABLE = "HYBRID_QUANTUM_AER_THREADS"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Software(_Model):
    """Python and the versions of every installed distribution that shapes the numbers."""

    python: str
    packages: dict[str, str]

    def differences(self, other: Software) -> dict[str, tuple[str | None, str | None]]:
        """``name: (this, other)`` for every package (and Python) whose version differs."""
        mine = {"python": self.python, **self.packages}
        theirs = {"python": other.python, **other.packages}
        return {
            name: (mine.get(name), theirs.get(name))
            for name in sorted(mine.keys() | theirs.keys())
            if mine.get(name) != theirs.get(name)
        }


class Origin(_Model):
    """The Airflow task that asked for the job (absent for jobs cut from the command line)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int | None = None


class CutRequest(_Model):
    """What the cut stage was asked for, beside the circuit and observables themselves."""

    parameters: list[float] | dict[str, float] | None = None
    partition_labels: str | None = None
    max_subcircuit_qubits: int | None = None
    max_coefficients: int | None = None
    cut_seed: int | None = None
    num_batches: int


class JobProvenance(_Model):
    """Where a job came from: recorded once by the cut stage, in the manifest."""

    software: Software
    host: str = Field(description="platform of the machine that cut the job")
    circuit_sha256: str = Field(description="sha256 of the bound circuit as QPY (circuit.qpy)")
    request: CutRequest
    origin: Origin | None = None


class Executor(_Model):
    """The machine or pod a batch ran in; Kubernetes fields are None off a cluster.

    The pod's Kueue Workload carries the label ``kueue.x-k8s.io/job-uid=<pod_uid>``, which is
    how to find it while it exists.
    """

    kind: Literal["pod", "process"]
    host: str
    platform: str
    workflow: str | None = None
    flavor: str | None = None
    image: str | None = None
    pod: str | None = None
    namespace: str | None = None
    pod_uid: str | None = None
    node: str | None = None


class Seeds(_Model):
    """The randomness a batch used, so a rerun can draw exactly the same shots."""

    sampling_entropy: list[int] | None = Field(
        default=None,
        description="entropy of numpy's default_rng for the built-in shot sampler; None when "
        "there was no sampling (exact mode) or a supplied sampler drew its own",
    )
    reproducible: bool = Field(description="whether a rerun on the same software must match")


class IsaCircuits(_Model):
    """How one subcircuit's subexperiments were transpiled for a device (ISA circuits)."""

    subsystem: str = Field(description="the subcircuit's label")
    width: int
    layout: list[int] = Field(description="physical qubit of each virtual qubit, shared by all")
    depth: int = Field(description="largest depth among its transpiled subexperiments")
    two_qubit_gates: int = Field(description="most two-qubit gates in one of them")


class ProviderJobs(_Model):
    """The QPU provider's jobs that produced a batch (IBM Quantum Runtime)."""

    provider: str = Field(description="e.g. 'ibm-runtime' or 'ibm-runtime-local' (testing)")
    backend: str = Field(description="the device (or fake device) the jobs ran on")
    job_ids: list[str]
    submissions: int = Field(description="jobs this batch submitted; reattaching adds none")
    isa: list[IsaCircuits]


class BatchProvenance(_Model):
    """Where and with what one batch ran: written into its result record."""

    software: Software
    executor: Executor
    device: str = Field(description="the Aer device used (cpu or gpu), or 'sampler'")
    simulator: str = Field(description="e.g. 'aer statevector', or the sampler's import path")
    threads: int = Field(
        description="Aer threads; wide circuits sum in an order that depends on it"
    )
    seeds: Seeds
    provider_jobs: ProviderJobs | None = Field(
        default=None, description="the QPU provider's jobs, when a batch ran on one"
    )


@functools.cache
def software() -> Software:
    """The running interpreter's software; cached, since packages do not change in a process."""
    packages = {}
    for name in NUMERIC_DISTRIBUTIONS:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cupy = _cupy_version()
    if cupy:
        packages["cupy"] = cupy
    return Software(python=platform.python_version(), packages=packages)


def _cupy_version() -> str | None:
    for distribution in metadata.distributions():
        name = (distribution.metadata["Name"] or "").lower()
        if name == "cupy" or name.startswith("cupy-cuda"):
            return distribution.version
    return None


def host_platform() -> str:
    return f"{platform.system()} {platform.machine()}"


def executor_from_environment() -> Executor:
    """Describe where this process runs, from the variables its pod or runner set."""
    fields = {
        field: os.environ.get(variable) or None for field, variable in EXECUTOR_ENVIRONMENT.items()
    }
    return Executor(
        kind="pod" if fields["pod"] else "process",
        host=platform.node(),
        platform=host_platform(),
        **fields,
    )


def mixed_software(records: dict[int, Software]) -> dict[str, dict[str, list[int]]]:
    """Packages whose version differs between batches: ``name: {version: [batch, …]}``."""
    listed = {index: {"python": r.python, **r.packages} for index, r in sorted(records.items())}
    names = sorted(set().union(*listed.values())) if listed else []
    by_package: dict[str, dict[str, list[int]]] = {}
    for index, versions in listed.items():
        for name in names:
            version = versions.get(name, "(not installed)")
            by_package.setdefault(name, {}).setdefault(version, []).append(index)
    return {name: versions for name, versions in by_package.items() if len(versions) > 1}
