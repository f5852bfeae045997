"""Run QPD term choices: the one execution path of a batch, in a pod, a local worker or in process.

Given a slice of each subsystem's choices, built where it runs from the stored plan (or from a
plan in memory), the results come out in the job's flat orders:

* exact mode, built-in simulator: :class:`~.outcomes.ExactMeans`, one row per choice, from the
  deferred-measurement circuits (:mod:`.deferred`); no distribution is ever held;
* shot mode, built-in simulator: :class:`~.outcomes.Outcomes` sampled from the exact
  distributions of the measured subexperiments (choice, then observable group);
* shot mode, a supplied sampler or device: the measured subexperiments themselves
  (:func:`~hybrid_provider.core.cut.experiments.measured_circuits`), in one sampler job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from qiskit import QuantumCircuit

from hybrid_provider.core.cut.experiments import SubsystemChoices, measured_circuits
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute import deferred, samplers, simulate
from hybrid_provider.core.execute.options import DEFAULT_SAMPLER, ExecutionOptions
from hybrid_provider.core.execute.outcomes import BatchOutcomes, ExactMeans, build_outcomes


def num_measured(segments: Sequence[SubsystemChoices]) -> int:
    return sum(len(s.terms) * len(s.groups) for s in segments)


def run_choices(
    segments: Sequence[SubsystemChoices],
    options: ExecutionOptions,
    *,
    seed,
    sampler=None,
    device: str = "cpu",
    shots: np.ndarray | None = None,
) -> Iterator[BatchOutcomes]:
    """Results of the segments' choices, in order, a chunk at a time (memory stays bounded).

    ``shots`` gives each measured subexperiment its own count (weighted allocation); by default
    each gets ``options.shots``. ``seed`` is anything ``numpy.random.default_rng`` takes.
    """
    supplied = sampler is not None or options.sampler != DEFAULT_SAMPLER
    if options.mode == "exact":
        if supplied:
            raise InputError("exact mode needs the built-in simulator, not a supplied sampler")
        for segment in segments:
            yield from (ExactMeans(means) for means in deferred.exact_means(segment, device))
        return
    counts = (
        np.full(num_measured(segments), options.shots or 0, dtype=np.int64)
        if shots is None
        else np.asarray(shots, dtype=np.int64)
    )
    if supplied:
        chosen = sampler if sampler is not None else samplers.resolve_sampler(options.sampler)
        yield _on_sampler(chosen, segments, counts)
        return
    rng = np.random.default_rng(seed)
    position = 0
    for segment in segments:
        for distributions, bits in deferred.probabilities(segment, device):
            chunk = counts[position : position + len(distributions)]
            position += len(distributions)
            sampled = simulate.sample_distributions(distributions, chunk, seed=rng)
            yield build_outcomes(sampled, chunk.tolist(), bits)


def _on_sampler(sampler, segments: Sequence[SubsystemChoices], counts: np.ndarray):
    circuits, bits = measured_subexperiments(segments)
    distributions = samplers.run_on_sampler(sampler, circuits, counts.tolist())
    return build_outcomes(distributions, counts.tolist(), bits)


def measured_subexperiments(
    segments: Sequence[SubsystemChoices],
) -> tuple[list[QuantumCircuit], list[int]]:
    """The segments' measured subexperiments, in the job's flat order, and the number of
    observable bits of each: what a sampler or a QPU provider runs."""
    circuits = [circuit for segment in segments for circuit in measured_circuits(segment)]
    bits = [
        deferred.observable_bits(group)
        for segment in segments
        for _ in segment.terms
        for group in segment.groups
    ]
    return circuits, bits
