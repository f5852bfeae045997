"""The whole quantum stage in one process: plan → distinct term choices → Aer → reconstruction.

No QPY, no store, no per-batch files: what ``write_job`` + ``run_batch`` + ``reconstruct_job``
do for a distributed run, done in memory for a run that fits one machine (the CLI's
``estimate --in-process``, notebooks, benchmarks). Results agree with the job path: exact mode
to rounding, shot mode in distribution (the same exact distributions are sampled).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from hybrid_provider.core.cut.experiments import DistinctChoices, distinct_choices
from hybrid_provider.core.cut.plan import CutPlan
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute import direct, simulate
from hybrid_provider.core.execute.allocation import allocate_shots
from hybrid_provider.core.execute.options import (
    DEFAULT_SAMPLER,
    ExecutionOptions,
    ShotAllocation,
)
from hybrid_provider.core.execute.outcomes import Outcomes, build_outcomes
from hybrid_provider.core.manifest import SubsystemRef
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


def layouts(plan: CutPlan, choices: DistinctChoices) -> list[SubsystemRef]:
    """Where each subsystem's measured subexperiments sit in the flat (job) order."""
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    widths = plan.subcircuit_widths
    refs, offset = [], 0
    for subsystem in choices.subsystems:
        groups = len(ObservableCollection(subsystem.observables).groups)
        refs.append(
            SubsystemRef(
                label=subsystem.label,
                width=widths[subsystem.label],
                offset=offset,
                num_groups=groups,
                num_distinct=len(subsystem.terms),
                subobservables=subsystem.subobservables,
            )
        )
        offset += groups * len(subsystem.terms)
    return refs


def sample_outcomes(
    plan: CutPlan,
    options: ExecutionOptions,
    choices: DistinctChoices | None = None,
    device: str = "cpu",
) -> Iterator[tuple[int, Outcomes]]:
    """Shot outcomes of every measured subexperiment, chunk by chunk, in the job's flat order."""
    if options.mode != "shots":
        raise InputError("sample_outcomes is for shot mode; exact mode needs no outcomes")
    choices = choices or distinct_choices(plan)
    shots = allocate_shots(
        options.shots or 0,
        choices.coefficients,
        layouts(plan, choices),
        {s.label: s.index for s in choices.subsystems},
        options.shot_allocation,
    )
    rng = np.random.default_rng(options.seed)
    for first, distributions, observable_bits in direct.group_distributions(
        plan, device=device, choices=choices
    ):
        counts = shots[first : first + len(distributions)]
        sampled = simulate.sample_distributions(distributions, counts, seed=rng)
        yield first, build_outcomes(sampled, counts.tolist(), observable_bits)


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
    device = _aer_device(options.device)
    choices = distinct_choices(plan)
    indices = {s.label: s.index for s in choices.subsystems}
    xp = arrays.array_module(reconstruct_device)
    timings = {"choices": time.perf_counter() - started}
    mark = time.perf_counter()
    refs = layouts(plan, choices)
    if options.mode == "exact":
        coefficients, factors = direct.exact_factors(plan, device=device, choices=choices)
        tables = [(xp.asarray(f.means), xp.zeros(f.means.shape)) for f in factors]
        timings["execute"] = time.perf_counter() - mark
    else:
        coefficients = choices.coefficients
        accumulator = FactorAccumulator(xp, refs, len(plan.observables))
        for first, outcomes in sample_outcomes(plan, options, choices, device=device):
            accumulator.add(first, outcomes)
        tables = accumulator.factors()
        timings["execute"] = time.perf_counter() - mark
    mark = time.perf_counter()
    values, errors = combine_factors(xp, coefficients, indices, tables)
    timings["reconstruct"] = time.perf_counter() - mark
    seconds = time.perf_counter() - started
    reconstruction = Reconstruction(
        observables=plan.observables.to_labels(),
        values=[float(v) for v in values],
        std_errors=[float(e) for e in errors],
        mode=options.mode,
        shots=options.shots,
        array_module=xp.__name__,
        seconds=seconds,
    )
    total = sum(r.num_groups * r.num_distinct for r in refs)
    num = total if options.mode == "shots" else sum(r.num_distinct for r in refs)
    return InProcessResult(reconstruction, num, timings)


def predicted_std_errors(
    plan: CutPlan, shots: int, allocation: ShotAllocation = "uniform", device: str = "cpu"
) -> np.ndarray:
    """Delta-method standard errors an allocation would give, evaluated at the exact factors.

    A noise-free way to compare shot allocations (a single shot run's own estimate of its
    standard error fluctuates from seed to seed).
    """
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    choices = distinct_choices(plan)
    refs = layouts(plan, choices)
    indices = {s.label: s.index for s in choices.subsystems}
    counts = allocate_shots(shots, choices.coefficients, refs, indices, allocation)
    coefficients, factors = direct.exact_factors(plan, device=device, choices=choices)
    tables = []
    for ref, factor, subsystem in zip(refs, factors, choices.subsystems, strict=True):
        collection = ObservableCollection(subsystem.observables)
        variance = np.zeros_like(factor.means)
        for o, pauli in enumerate(subsystem.observables):
            entries = collection.lookup[pauli]
            for k, _ in entries:
                n = counts[ref.offset + np.arange(ref.num_distinct) * ref.num_groups + k]
                variance[:, o] += (1.0 - factor.means[:, o] ** 2) / n / len(entries) ** 2
        tables.append((factor.means, variance))
    return combine_factors(np, coefficients, indices, tables)[1]


def _aer_device(asked: str) -> str:
    if asked == "cpu":
        return "cpu"
    if simulate.gpu_available():
        return "gpu"
    if asked == "gpu":
        import logging

        logging.getLogger(__name__).warning(
            "Aer GPU simulation was asked for but no GPU is available; using the CPU"
        )
    return "cpu"
