"""A cut job on a real IBM Quantum device: runs only when ``QISKIT_IBM_TOKEN`` is set.

The HTTP layer of IBM Quantum is not reachable where this project's CI runs, so these tests
are opt-in, like the rest of ``tests/cluster``. They spend real QPU time (two small batches of
1,000 shots per subexperiment, about a minute of QPU time on a Heron device).

    QISKIT_IBM_TOKEN=... [QISKIT_IBM_INSTANCE=crn:...] [HYBRID_TEST_IBM_DEVICE=ibm_torino] \
        pytest tests/cluster/test_ibm_quantum.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hybrid_provider.core import store
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute import ibm_runtime
from hybrid_provider.core.execute.batch import load_result, run_batch
from hybrid_provider.core.execute.options import execution_options
from hybrid_provider.core.inputs import parse_observables
from hybrid_provider.core.reconstruct.combine import reconstruct_job

pytestmark = pytest.mark.skipif(
    not os.environ.get("QISKIT_IBM_TOKEN"), reason="set QISKIT_IBM_TOKEN to use a real account"
)
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import exact_values, random_ansatz  # noqa: E402

SAMPLER = "ibm-runtime" + (
    f":{os.environ['HYBRID_TEST_IBM_DEVICE']}" if os.environ.get("HYBRID_TEST_IBM_DEVICE") else ""
)


def test_a_batch_killed_while_its_job_queues_reattaches_on_a_real_device(tmp_path):
    circuit = random_ansatz(4, reps=1)
    plan = plan_cuts(circuit, parse_observables(["ZZZZ"], 4), partition_labels="AABB")
    job = write_job(circuit, plan, str(tmp_path / "store"), "job", 2)
    options = execution_options(mode="shots", shots=1000, sampler=SAMPLER)
    code = (
        "import sys; from hybrid_provider.core.execute.batch import run_batch;"
        "from hybrid_provider.core.execute.options import ExecutionOptions;"
        f"run_batch({job.manifest_uri!r}, 0, ExecutionOptions.model_validate_json(sys.argv[1]))"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", code, options.model_dump_json()],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    ticket = ibm_runtime.ticket_uri(job.manifest_uri, 0)
    deadline = time.monotonic() + 600
    while not store.exists(ticket):
        assert runner.poll() is None and time.monotonic() < deadline
        time.sleep(1)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    for index in range(job.manifest.num_batches):
        run_batch(job.manifest_uri, index, options)
    first = load_result(job.manifest_uri, job.manifest, 0)[1].provenance.provider_jobs
    assert first is not None and first.submissions == 0  # reattached through service.job(id)
    result = reconstruct_job(job.manifest_uri, device="cpu")
    bias = np.asarray(result.values) - exact_values(circuit, ["ZZZZ"])
    print(f"cut estimate on {first.backend}: {result.values} ± {result.std_errors}, bias {bias}")
    assert np.all(np.abs(bias) < 0.5)  # a real device's noise: a sanity bound, not a precision one
