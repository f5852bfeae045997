"""How a shot budget is spread over the distinct subexperiments.

``uniform`` gives every subexperiment the same shots, as the addon's tutorial does. ``weighted``
keeps the same total but gives each subexperiment shots in proportion to its weight: the sum of
``|coefficient|`` over every coefficient that uses it (a de-duplicated subexperiment serves
several coefficients, so it weighs more). Its estimate's error is multiplied by at most that
weight, so this is the proportional (Neyman-style) allocation for the worst case of every factor
being ±1; the reconstruction's delta-method standard error shows the actual gain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

Allocation = Literal["uniform", "weighted"]


def experiment_weights(
    coefficients: np.ndarray, layouts: Sequence, indices: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Weight of every flat subexperiment (layouts give label, offset, num_groups, num_distinct)."""
    magnitudes = np.abs(np.asarray(coefficients, dtype=np.float64))
    total = sum(layout.num_distinct * layout.num_groups for layout in layouts)
    weights = np.zeros(total)
    for layout in layouts:
        per_distinct = np.bincount(
            indices[layout.label], weights=magnitudes, minlength=layout.num_distinct
        )
        span = layout.num_distinct * layout.num_groups
        weights[layout.offset : layout.offset + span] = np.repeat(per_distinct, layout.num_groups)
    return weights


def allocate_shots(
    shots: int,
    coefficients: np.ndarray,
    layouts: Sequence,
    indices: Mapping[str, np.ndarray],
    allocation: Allocation = "uniform",
) -> np.ndarray:
    """Shots per flat subexperiment; the total is always ``shots`` times their number."""
    weights = experiment_weights(coefficients, layouts, indices)
    count = len(weights)
    if allocation == "uniform" or count == 0:
        return np.full(count, shots, dtype=np.int64)
    if allocation != "weighted":
        raise ValueError(f"unknown shot allocation '{allocation}': use uniform or weighted")
    return proportional(shots * count, weights)


def proportional(budget: int, weights: np.ndarray) -> np.ndarray:
    """Integers >= 1 summing to ``budget``, proportional to ``weights`` (largest remainder)."""
    count = len(weights)
    if budget < count:
        raise ValueError(f"a budget of {budget} shots cannot give {count} subexperiments one each")
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones(count)
    # Everyone gets one shot; the rest is shared in proportion to the weights.
    ideal = (budget - count) * weights / weights.sum()
    shares = np.floor(ideal).astype(np.int64)
    missing = budget - count - int(shares.sum())
    if missing:
        shares[np.argsort(-(ideal - shares), kind="stable")[:missing]] += 1
    return shares + 1
