"""Our outcomes in the shape ``reconstruct_expectation_values`` reads: SamplerV2 results.

For every subsystem, one ``SamplerPubResult`` per (coefficient, observable group) in the addon's
order, each holding the outcomes of the distinct subexperiment that coefficient uses (the same
object repeated for duplicates), as ``BitArray``s named like the addon's registers.
"""

from __future__ import annotations

import numpy as np
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, SamplerPubResult

from hybrid_provider.core.execute.outcomes import Outcomes


def _bits(values: np.ndarray, num_bits: int) -> BitArray:
    """One shot per value, packed big-endian as Qiskit stores them."""
    num_bytes = max(1, (num_bits + 7) // 8)
    data = values.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - num_bytes :]
    return BitArray(np.ascontiguousarray(data), max(1, num_bits))


def _pub(outcomes: Outcomes, flat: int) -> SamplerPubResult:
    first, end = outcomes.offsets[flat], outcomes.offsets[flat + 1]
    counts = outcomes.weights[first:end]
    if not np.allclose(counts, np.round(counts)) or outcomes.shots[flat] == 0:
        raise ValueError("the addon's SamplerV2 path needs shot counts, not probabilities")
    shots = np.repeat(outcomes.values[first:end], counts.astype(np.int64))
    width = int(outcomes.observable_bits[flat])
    observable = shots & np.uint64((1 << width) - 1)
    qpd = shots >> np.uint64(width)
    qpd_bits = max(1, int(qpd.max()).bit_length()) if len(qpd) else 1
    data = DataBin(
        observable_measurements=_bits(observable, width), qpd_measurements=_bits(qpd, qpd_bits)
    )
    return SamplerPubResult(data)


def addon_results(outcomes: Outcomes, layouts, indices, num_coefficients: int) -> dict:
    """``{label: PrimitiveResult}`` for ``reconstruct_expectation_values`` from flat outcomes."""
    results = {}
    for layout in layouts:
        cache: dict[int, SamplerPubResult] = {}
        pubs = []
        index = indices[layout.label]
        for i in range(num_coefficients):
            for k in range(layout.num_groups):
                flat = layout.offset + int(index[i]) * layout.num_groups + k
                if flat not in cache:
                    cache[flat] = _pub(outcomes, flat)
                pubs.append(cache[flat])
        results[layout.label] = PrimitiveResult(pubs)
    return results
