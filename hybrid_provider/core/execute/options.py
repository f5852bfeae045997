"""How subexperiments run. Kept free of Qiskit imports: specs and DAG files load it cheaply."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybrid_provider.core.errors import InputError, one_line
from hybrid_provider.core.execute.runtime_options import IBM_RUNTIME_SAMPLER, RuntimeOptions

Mode = Literal["exact", "shots"]
Device = Literal["cpu", "gpu", "auto"]
ShotAllocation = Literal["uniform", "weighted"]
DEFAULT_SAMPLER = "aer"
#: Options that say where a batch runs, not what it computes: recorded with each result, never
#: compared, so batches of one job may run on CPU, GPU or another flavor and still combine.
PLACEMENT_FIELDS = frozenset({"device"})
AER_SAMPLER = "aer-sampler"
#: Shots per subexperiment: a billion is beyond any device's budget, and totals over a job's
#: subexperiments must still count in 64 bits.
MAX_SHOTS = 10**9
#: Seeds travel through JSON and YAML to pods; a 64-bit signed integer survives every parser.
MAX_SEED = 2**63 - 1
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


class ExecutionOptions(BaseModel):
    """How subexperiments run. Stored with every result: a batch whose stored result has another
    :meth:`identity` runs again; a different placement (``device``) does not make it stale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "exact"
    shots: int | None = Field(default=None, description="shots per subexperiment (shot mode)")
    seed: int = 1234
    device: Device = "auto"  # Aer on a GPU when the pod or machine has one
    sampler: str = Field(
        default=DEFAULT_SAMPLER,
        description="'aer' (batched statevector), 'aer-sampler', 'ibm-runtime:DEVICE', or "
        "'module:attribute'",
    )
    runtime: RuntimeOptions | None = Field(
        default=None, description="IBM Runtime job options (ibm-runtime samplers only)"
    )

    shot_allocation: ShotAllocation = Field(
        default="uniform",
        description="shot mode: 'uniform' (same shots each) or 'weighted' (same total, spread "
        "in proportion to each subexperiment's |coefficient| weight)",
    )

    def identity(self) -> dict[str, object]:
        """What a result is a result of (mode, shots, seed, sampler, allocation)."""
        return self.model_dump(exclude=set(PLACEMENT_FIELDS))

    @field_validator("shots")
    @classmethod
    def _shots_in_range(cls, shots: int | None) -> int | None:
        if shots is not None and shots > MAX_SHOTS:
            raise InputError(
                f"{shots:,} shots asked for; give at most {MAX_SHOTS:,} shots per subexperiment"
            )
        return shots

    @field_validator("seed")
    @classmethod
    def _seed_in_range(cls, seed: int) -> int:
        if not 0 <= seed <= MAX_SEED:
            raise InputError(f"the seed must be 0 or more and at most {MAX_SEED:,}, got {seed}")
        return seed

    @field_validator("sampler")
    @classmethod
    def _sampler_named(cls, sampler: str) -> str:
        check_sampler_name(sampler)
        return sampler

    @model_validator(mode="after")
    def _consistent(self) -> ExecutionOptions:
        if self.mode == "shots" and (self.shots is None or self.shots < 1):
            raise InputError("shot mode needs a positive number of shots (e.g. --shots 4096)")
        if self.mode == "exact" and self.shots is not None:
            raise InputError("exact mode takes no shot count: drop --shots or use shot mode")
        if self.mode == "exact" and self.shot_allocation != "uniform":
            raise InputError("shot allocation applies to shot mode only: drop it or use --shots")
        if self.mode == "exact" and self.sampler != DEFAULT_SAMPLER:
            raise InputError(
                f"exact mode needs the built-in simulator; sampler '{self.sampler}' can only "
                "run in shot mode"
            )
        if self.runtime is not None and not IBM_RUNTIME_SAMPLER.fullmatch(self.sampler):
            raise InputError("runtime options apply to an 'ibm-runtime:DEVICE' sampler only")
        return self


def check_sampler_name(name: str) -> None:
    """A sampler is ``aer``, ``aer-sampler``, ``ibm-runtime[:DEVICE]`` or ``module:attribute``."""
    if name in (DEFAULT_SAMPLER, AER_SAMPLER) or IBM_RUNTIME_SAMPLER.fullmatch(name):
        return
    if not _IMPORT_PATH.fullmatch(name):
        raise InputError(
            f"unknown sampler '{name}': use '{DEFAULT_SAMPLER}' (default), '{AER_SAMPLER}', "
            "'ibm-runtime:DEVICE' (e.g. ibm-runtime:fake_torino), or an import path "
            "'module:attribute' naming a SamplerV2 or a backend"
        )


def execution_options(**fields) -> ExecutionOptions:
    """Build options, turning pydantic's report into one InputError sentence per problem."""
    try:
        return ExecutionOptions(**fields)
    except ValidationError as exc:
        raise InputError(f"invalid execution options: {one_line(exc)}") from exc
