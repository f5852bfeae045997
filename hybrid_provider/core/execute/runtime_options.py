"""Options of IBM Quantum Runtime jobs that matter for cutting. No Qiskit import: specs load it.

They travel with :class:`~hybrid_provider.core.execute.options.ExecutionOptions` (so they are
recorded with each result and reach pods as one ``--runtime-options`` JSON flag) and become the
Runtime ``SamplerV2`` options of every job of a batch. Shots are per pub: each subexperiment's
own count, as the batch allocates them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "ibm-runtime"
#: ``ibm-runtime`` (least busy device), ``ibm-runtime:ibm_torino``, or a fake device such as
#: ``ibm-runtime:fake_torino`` (local testing mode).
IBM_RUNTIME_SAMPLER = re.compile(r"ibm-runtime(:[a-z][a-z0-9_]*)?")
#: The account, as qiskit-ibm-runtime's own tools name it (a pod gets them from a Secret).
TOKEN_VARIABLE = "QISKIT_IBM_TOKEN"
CHANNEL_VARIABLE = "QISKIT_IBM_CHANNEL"
INSTANCE_VARIABLE = "QISKIT_IBM_INSTANCE"
DEFAULT_CHANNEL = "ibm_quantum_platform"
DecouplingSequence = Literal["XX", "XpXm", "XY4"]


class RuntimeOptions(BaseModel):
    """What a Runtime job is asked to do beyond running the ISA circuits as given."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    twirl_gates: bool = Field(default=False, description="Pauli-twirl two-qubit gates")
    twirl_measure: bool = Field(default=False, description="twirl measurements (readout)")
    dynamical_decoupling: DecouplingSequence | None = Field(
        default=None, description="insert this decoupling sequence on idle qubits"
    )
    max_execution_time: int | None = Field(
        default=None, ge=1, description="seconds of QPU time one job may use (Runtime limit)"
    )
    optimization_level: Literal[0, 1, 2, 3] = Field(
        default=1, description="of the transpiler that turns subexperiments into ISA circuits"
    )

    def sampler_options(self) -> dict[str, Any]:
        """The Runtime ``SamplerV2`` options these stand for (only those set)."""
        options: dict[str, Any] = {}
        if self.twirl_gates or self.twirl_measure:
            options["twirling"] = {
                "enable_gates": self.twirl_gates,
                "enable_measure": self.twirl_measure,
            }
        if self.dynamical_decoupling:
            options["dynamical_decoupling"] = {
                "enable": True,
                "sequence_type": self.dynamical_decoupling,
            }
        if self.max_execution_time:
            options["max_execution_time"] = self.max_execution_time
        return options


def is_runtime_sampler(name: str) -> bool:
    return IBM_RUNTIME_SAMPLER.fullmatch(name) is not None


def device_name(sampler: str) -> str | None:
    """The device an ``ibm-runtime[:DEVICE]`` sampler names; None means the least busy one."""
    return sampler.partition(":")[2] or None


def is_local(sampler: str) -> bool:
    """``fake_*`` devices run in the Runtime's local testing mode: no account, no network."""
    return (device_name(sampler) or "").startswith("fake_")
