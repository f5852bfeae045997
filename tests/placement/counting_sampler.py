"""A sampler that leaves one file in the store per batch it runs, so a test can count how many
times each workflow's batches executed, and on which flavor. Optionally slow, to hold a slot.

Runners import it by name (``--sampler counting_sampler:CountingSampler``, this folder on
PYTHONPATH); where to count and how long to sleep come from ``HYBRID_QUANTUM_TEST_*`` variables,
which the local runner's environment passes on. The results are Aer's.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from qiskit_aer.primitives import SamplerV2

COUNT_FOLDER = "HYBRID_QUANTUM_TEST_EXECUTIONS"
SLEEP = "HYBRID_QUANTUM_TEST_SLEEP_S"


class CountingSampler(SamplerV2):
    def run(self, pubs, *, shots=None):
        folder = Path(os.environ[COUNT_FOLDER])
        folder.mkdir(parents=True, exist_ok=True)
        workflow = os.environ.get("HYBRID_QUANTUM_WORKFLOW", "?")
        flavor = os.environ.get("HYBRID_QUANTUM_FLAVOR", "?")
        (folder / f"{workflow}.{flavor}.{uuid.uuid4().hex}").touch()
        time.sleep(float(os.environ.get(SLEEP, "0")))
        return super().run(pubs, shots=shots)


def executions(folder: Path, workflow: str) -> list[str]:
    """The flavors the workflow's batch executions ran on, one entry per execution."""
    return sorted(p.name.split(".")[1] for p in folder.glob(f"{workflow}.*"))
