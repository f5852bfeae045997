"""The array module reconstruction runs on: CuPy when a GPU is there, NumPy otherwise.

Only operations both libraries share are used on it, so one code path serves both.
"""

from __future__ import annotations

import logging
from types import ModuleType

import numpy as np

log = logging.getLogger(__name__)


def cupy_or_none() -> ModuleType | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # no CuPy, no driver, or no device: all mean "use NumPy"
        return None
    return None


def array_module(device: str = "auto") -> ModuleType:
    """``auto`` and ``gpu`` use CuPy when a GPU is usable; ``gpu`` without one warns, uses NumPy."""
    if device not in ("auto", "gpu", "cpu"):
        raise ValueError(f"unknown device '{device}': use auto, gpu or cpu")
    if device == "cpu":
        return np
    cupy = cupy_or_none()
    if cupy is not None:
        return cupy
    if device == "gpu":
        log.warning("a GPU was asked for but CuPy or a CUDA device is missing; using NumPy")
    return np


def to_numpy(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def parity(xp: ModuleType, values):
    """Parity of the set bits of each uint64 (XOR folding works on NumPy and CuPy alike)."""
    for shift in (32, 16, 8, 4, 2, 1):
        values = values ^ (values >> xp.uint64(shift))
    return values & xp.uint64(1)


def ranges(xp: ModuleType, starts, lengths):
    """Indices of the concatenated ranges [start, start + length) without a Python loop."""
    ends = xp.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    shift = xp.repeat(starts - (ends - lengths), lengths)
    return xp.arange(total, dtype=xp.int64) + shift


def segment_sums(xp: ModuleType, data, lengths):
    """Row sums of ``data`` over consecutive segments of the given (positive) lengths."""
    if xp is np:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.add.reduceat(data, starts, axis=0)
    import cupyx

    segment_of_row = xp.repeat(xp.arange(len(lengths)), lengths)
    sums = xp.zeros((len(lengths),) + data.shape[1:], dtype=data.dtype)
    cupyx.scatter_add(sums, segment_of_row, data)
    return sums
