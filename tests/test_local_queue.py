"""The local backend's runs under concurrency: atomic get-or-create."""

from __future__ import annotations

import threading
import time

from helpers import random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.backends.local.backend import LocalBackend
from hybrid_provider.backends.spec import compile_spec
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import BackendError
from hybrid_provider.core.execute.options import ExecutionOptions

TIMEOUT = 120


def _job(store, name, num_batches, seed=7):
    circuit = random_ansatz(4, reps=1, seed=seed)
    plan = plan_cuts(circuit, PauliList(["ZZZZ", "XIIX"]), partition_labels="AABB")
    return circuit, write_job(circuit, plan, str(store), name, num_batches=num_batches)


def _spec(job, name, options=None, **kwargs):
    options = options or ExecutionOptions()
    return compile_spec(job.manifest, job.manifest_uri, name, options, **kwargs)


def _wait(backend, name, until=lambda s: s.phase.finished):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = backend.status(name)
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"workflow {name} did not get there in {TIMEOUT} s: {status}")


def test_racing_submits_of_one_name_with_different_specs_accept_exactly_one(tmp_path):
    _, job = _job(tmp_path, "job", num_batches=1)
    backend = LocalBackend(str(tmp_path), quota={"gpu": 0})  # each runner ends at once
    for attempt in range(8):
        name = f"hq-race-{attempt}"
        specs = [
            _spec(job, name, flavor="gpu"),
            _spec(job, name, ExecutionOptions(mode="shots", shots=64), flavor="gpu"),
        ]
        start, outcomes = threading.Barrier(2), [None, None]

        def submit(which, specs=specs, start=start, outcomes=outcomes):
            start.wait()
            try:
                outcomes[which] = backend.submit(specs[which]).name
            except BackendError as exc:
                outcomes[which] = str(exc)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o == name for o in outcomes) == [False, True], outcomes
        assert any("already exists with another spec" in o for o in outcomes), outcomes
        accepted = specs[outcomes.index(name)]
        assert (tmp_path / "_runs" / name / "spec.json").read_text() == accepted.model_dump_json()
        _wait(backend, name)
