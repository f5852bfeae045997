"""How subexperiments run. Kept free of Qiskit imports: specs and DAG files load it cheaply."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybrid_provider.core.errors import InputError

Mode = Literal["exact", "shots"]
Device = Literal["cpu", "gpu", "auto"]
ShotAllocation = Literal["uniform", "weighted"]
DEFAULT_SAMPLER = "aer"
#: Options that say where a batch runs, not what it computes: recorded with each result, never
#: compared, so batches of one job may run on CPU, GPU or another flavor and still combine.
PLACEMENT_FIELDS = frozenset({"device"})


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
        description="'aer' (batched statevector), 'aer-sampler', or 'module:attribute'",
    )

    shot_allocation: ShotAllocation = Field(
        default="uniform",
        description="shot mode: 'uniform' (same shots each) or 'weighted' (same total, spread "
        "in proportion to each subexperiment's |coefficient| weight)",
    )

    def identity(self) -> dict[str, object]:
        """What a result is a result of (mode, shots, seed, sampler, allocation)."""
        return self.model_dump(exclude=set(PLACEMENT_FIELDS))

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
        return self


def execution_options(**fields) -> ExecutionOptions:
    """Build options, turning pydantic's report into one InputError sentence per problem."""
    try:
        return ExecutionOptions(**fields)
    except ValidationError as exc:
        problems = "; ".join(
            error["msg"].removeprefix("Value error, ")
            + (f" ({'.'.join(map(str, error['loc']))})" if error["loc"] else "")
            for error in exc.errors()
        )
        raise InputError(f"invalid execution options: {problems}") from exc
