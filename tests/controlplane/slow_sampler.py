"""A sampler that takes its time, so that a batch is surely running when Kueue preempts it.

Pods import it by name (``--sampler slow_sampler:SlowSampler``; the folder is put on the
executor's PYTHONPATH through the connection's ``extra_env``). The results are Aer's.
"""

from __future__ import annotations

import time

from qiskit_aer.primitives import SamplerV2

SECONDS = 20.0


class SlowSampler(SamplerV2):
    def run(self, pubs, *, shots=None):
        time.sleep(SECONDS)
        return super().run(pubs, shots=shots)
