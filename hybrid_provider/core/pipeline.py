"""The whole quantum stage in one process: plan → distinct term choices → Aer → reconstruction.

No store and no files: what ``write_job`` + ``run_batch`` + ``reconstruct_job`` do for a
distributed run, done in memory for a run that fits one machine (the CLI's ``estimate
--in-process``, notebooks, benchmarks). It runs the same code as a batch
(:func:`~hybrid_provider.core.execute.choices.run_choices`) over every choice at once, as batch 0
of a one-batch job would: exact mode agrees with the job path to rounding, shot mode in
distribution (and exactly, for a one-batch job).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from hybrid_provider.core.cut.experiments import DistinctChoices, distinct_choices
from hybrid_provider.core.cut.job import subsystem_refs
from hybrid_provider.core.cut.plan import CutPlan
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.allocation import allocate_shots
from hybrid_provider.core.execute.choices import run_choices
from hybrid_provider.core.execute.options import (
    DEFAULT_SAMPLER,
    ExecutionOptions,
    ShotAllocation,
)
from hybrid_provider.core.execute.outcomes import ExactMeans
from hybrid_provider.core.execute.simulate import choose_device
from hybrid_provider.core.reconstruct import arrays
from hybrid_provider.core.reconstruct.combine import (
    FactorAccumulator,
    Reconstruction,
    combine_factors,
)


class InProcessResult(NamedTuple):
    reconstruction: Reconstruction
    num_subexperiments: int
    timings: dict[str, float]


def estimate_in_process(
    plan: CutPlan, options: ExecutionOptions, reconstruct_device: str = "auto"
) -> InProcessResult:
    """Values and standard errors of the plan's observables, computed without the store."""
    if options.sampler != DEFAULT_SAMPLER:
        raise InputError(
            "in-process runs use the built-in simulator; run other samplers through a job "
            "(hybrid-quantum estimate without --in-process)"
        )
    started = time.perf_counter()
    device = choose_device(options.device)
    choices = distinct_choices(plan)
    xp = arrays.array_module(reconstruct_device)
    timings = {"choices": time.perf_counter() - started}
    mark = time.perf_counter()
    refs = subsystem_refs(plan, choices)
    accumulator = FactorAccumulator(xp, refs, len(plan.observables))
    chosen = measured = 0
    shots = _shots(plan, options, choices)
    for result in run_choices(
        choices.subsystems, options, seed=[options.seed, 0], device=device, shots=shots
    ):
        if isinstance(result, ExactMeans):
            accumulator.add_means(chosen, result)
            chosen += result.num_rows
        else:
            accumulator.add_outcomes(measured, result)
            measured += result.num_rows
    tables = accumulator.factors()
    timings["execute"] = time.perf_counter() - mark
    mark = time.perf_counter()
    values, errors = combine_factors(xp, choices.coefficients, choices.indices, tables)
    timings["reconstruct"] = time.perf_counter() - mark
    reconstruction = Reconstruction(
        observables=plan.observables.to_labels(),
        values=[float(v) for v in values],
        std_errors=[float(e) for e in errors],
        mode=options.mode,
        shots=options.shots,
        array_module=xp.__name__,
        seconds=time.perf_counter() - started,
    )
    return InProcessResult(reconstruction, chosen or measured, timings)


def _shots(plan: CutPlan, options: ExecutionOptions, choices: DistinctChoices):
    """Shots per measured subexperiment when weighted; None (uniform) otherwise."""
    if options.mode != "shots" or options.shot_allocation == "uniform":
        return None
    return allocate_shots(
        options.shots or 0,
        choices.coefficients,
        subsystem_refs(plan, choices),
        choices.indices,
        options.shot_allocation,
    )


def exact_means(choices: DistinctChoices, device: str = "cpu") -> list[np.ndarray]:
    """Per subsystem, the exact factor of every choice (rows) and observable (columns)."""
    exact = ExecutionOptions(mode="exact")
    return [
        ExactMeans.concatenate(list(run_choices([s], exact, seed=0, device=device))).means  # type: ignore[arg-type]
        for s in choices.subsystems
    ]


def predicted_std_errors(
    plan: CutPlan, shots: int, allocation: ShotAllocation = "uniform", device: str = "cpu"
) -> np.ndarray:
    """Delta-method standard errors an allocation would give, evaluated at the exact factors.

    A noise-free way to compare shot allocations (a single shot run's own estimate of its
    standard error fluctuates from seed to seed).
    """
    choices = distinct_choices(plan)
    refs = subsystem_refs(plan, choices)
    counts = allocate_shots(shots, choices.coefficients, refs, choices.indices, allocation)
    tables = []
    for ref, subsystem, means in zip(
        refs, choices.subsystems, exact_means(choices, device), strict=True
    ):
        variance = np.zeros_like(means)
        for o, pauli in enumerate(subsystem.observables):
            entries = subsystem.collection.lookup[pauli]
            for k, _ in entries:
                n = counts[ref.offset + np.arange(ref.num_distinct) * ref.num_groups + k]
                variance[:, o] += (1.0 - means[:, o] ** 2) / n / len(entries) ** 2
        tables.append((means, variance))
    return combine_factors(np, choices.coefficients, choices.indices, tables)[1]
