"""Wall time and peak resident memory of a call, measured in this process; the machine."""

from __future__ import annotations

import gc
import os
import platform
import threading
import time
from datetime import date
from typing import Any, NamedTuple

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size now (Linux /proc; includes Aer's and NumPy's native memory)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


class Measured(NamedTuple):
    value: Any
    seconds: float
    peak_mb: float  # peak RSS during the call minus RSS just before it


def measure(function, *args, **kwargs) -> Measured:
    """Run ``function``, sampling RSS every 2 ms in a thread.

    The figure is a delta over the process's RSS before the call: memory the allocator already
    holds from earlier calls is reused without showing, so small deltas mean "fits in what was
    there", not zero.
    """
    gc.collect()
    start = rss_bytes()
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            done.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    try:
        value = function(*args, **kwargs)
    finally:
        seconds = time.perf_counter() - began
        done.set()
        sampler.join()
    peak[0] = max(peak[0], rss_bytes())
    return Measured(value, seconds, (peak[0] - start) / 2**20)


def machine() -> dict:
    """What a table was measured on: CPU model, cores, memory, Python, date."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "date": date.today().isoformat(),
    }
