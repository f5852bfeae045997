"""``make bench-placement``: flavor="auto" against each fixed flavor, scenario by scenario.

Replays the scenarios of issue 12 on the local backend (its real queue, runner, quota,
re-placement and history): the job's batches run through ``hybrid-quantum``'s own path, but
the *device time* is simulated by :class:`SimulatedDevice`, a SamplerV2 that sleeps for the
flavor's seconds per subexperiment before returning Aer's shots, because this machine has
neither a GPU nor a QPU (and two cores). Other tenants are real local runs on the same store.

    python -m benchmarks.placement [--json FILE] [--markdown]

Per scenario, each fixed flavor runs first, then ``auto`` (with the history the earlier runs
left in the store, as a nightly DAG would have). Makespan = submit to last batch finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from qiskit_aer.primitives import SamplerV2

#: Simulated device time, seconds per subexperiment: a GPU 3x a CPU core, a QPU 2x.
SECONDS_PER_SUBEXPERIMENT = {"cpu": 0.4, "gpu": 0.13, "qpu": 0.2}
QUOTA = {"cpu": 2, "gpu": 1, "qpu": 1}
SHOTS = 16
BATCHES = 8
#: auto's re-placement: a batch waiting this long moves to a flavor with a free slot.
REPLACE_AFTER_S = 3.0
BATCH_SECONDS = "HYBRID_QUANTUM_BENCH_BATCH_S"  # a tenant's batches: this long each
PREEMPT = "HYBRID_QUANTUM_BENCH_PREEMPT"  # folder: a GPU batch's first attempt is cut short


class SimulatedDevice(SamplerV2):
    """Aer's shots after the flavor's simulated device time (from the runner's environment)."""

    def run(self, pubs, *, shots=None):
        flavor = os.environ.get("HYBRID_QUANTUM_FLAVOR", "cpu")
        seconds = os.environ.get(BATCH_SECONDS)
        duration = float(seconds) if seconds else SECONDS_PER_SUBEXPERIMENT[flavor] * len(pubs)
        marks = os.environ.get(PREEMPT)
        if marks and flavor == "gpu":
            mark = Path(marks) / _batch_key(pubs)
            if not mark.exists():
                mark.touch()
                time.sleep(duration / 2)
                raise RuntimeError("preempted half-way (simulated): the slot was taken back")
        time.sleep(duration)
        return super().run(pubs, shots=shots)


def _batch_key(pubs) -> str:
    """The same key for every attempt of one batch: its workflow and its circuits' gates."""
    circuits = [pub[0] if isinstance(pub, tuple) else pub for pub in pubs]
    gates = [(i.operation.name, [str(p) for p in i.operation.params]) for i in circuits[0].data]
    text = f"{os.environ.get('HYBRID_QUANTUM_WORKFLOW', '')}|{len(circuits)}|{gates}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Tenant:
    """Another user's run on the same store: ``batches`` of ``seconds`` each on ``flavor``."""

    flavor: str
    batches: int
    seconds: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    tenants: list[Tenant] = field(default_factory=list)
    preempt_gpu: bool = False


SCENARIOS = [
    Scenario("idle", "nothing else runs"),
    Scenario(
        "cpu saturated",
        "another tenant's 6 batches of 8 s queue for both CPU slots",
        [Tenant("cpu", 6, 8.0)],
    ),  # fmt: skip
    Scenario(
        "gpu preempted",
        "every GPU batch loses its first attempt half-way and reruns",
        preempt_gpu=True,
    ),  # fmt: skip
    Scenario(
        "qpu queue long",
        "another tenant's 5 batches of 6 s queue for the only QPU",
        [Tenant("qpu", 5, 6.0)],
    ),  # fmt: skip
]
STRATEGIES = ("cpu", "gpu", "qpu", "auto")


def _job(store: str, name: str, batches: int):
    from qiskit.quantum_info import PauliList

    from benchmarks.cases import su2
    from hybrid_provider.core.cut.job import write_job
    from hybrid_provider.core.cut.plan import plan_cuts

    circuit = su2(6, reps=2)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    return write_job(circuit, plan, store, name, num_batches=batches)


def _options():
    from hybrid_provider.core.execute.options import ExecutionOptions

    return ExecutionOptions(
        mode="shots", shots=SHOTS, sampler="benchmarks.placement:SimulatedDevice"
    )


def _wait(backend, name: str):
    status = backend.status(name)
    while not status.phase.finished:
        time.sleep(0.1)
        status = backend.status(name)
    return status


def _start_tenants(backend, store: str, scenario: Scenario, tag: str) -> list[str]:
    from hybrid_provider.backends.spec import compile_spec

    names = []
    for n, tenant in enumerate(scenario.tenants):
        name = f"tenant-{tag}-{n}"
        job = _job(store, name, tenant.batches)
        os.environ[BATCH_SECONDS] = str(tenant.seconds)
        try:
            backend.submit(compile_spec(job.manifest, job.manifest_uri, name, _options(),
                                        flavor=tenant.flavor))  # fmt: skip
        finally:
            del os.environ[BATCH_SECONDS]
        names.append(name)
    return names


def run_once(backend, store: str, scenario: Scenario, strategy: str, tag: str) -> dict:
    """One strategy in one scenario: tenants first, then ours; makespan and placement."""
    from hybrid_provider.placement import decide

    tenants = _start_tenants(backend, store, scenario, tag)
    time.sleep(1.0 if tenants else 0.0)  # the tenants' runners take their slots
    job = _job(store, f"ours-{tag}", BATCHES)
    name = f"ours-{tag}"
    started = time.monotonic()
    spec, placement = decide.placed_spec(
        backend, job.manifest, job.manifest_uri, name, _options(), requested=strategy,
        store_uri=store, replace_after=REPLACE_AFTER_S,
    )  # fmt: skip
    backend.submit(spec)
    status = _wait(backend, name)
    makespan = time.monotonic() - started
    decide.remember_run(job.manifest_uri, status, store)
    for tenant in tenants:
        backend.stop(tenant)
        _wait(backend, tenant)
    ran = sorted(b.flavor.value for b in status.batches)
    return {
        "scenario": scenario.name,
        "strategy": strategy,
        "makespan_s": round(makespan, 2),
        "phase": status.phase.value,
        "placed": placement.counts(),
        "ran_on": ", ".join(f"{f} {ran.count(f)}" for f in sorted(set(ran))),
        "moved": sum(1 for b in status.batches if b.moved_from),
        "attempts": sum(b.attempts for b in status.batches),
        "predicted_s": placement.predicted_s,
        "reasons": placement.lines(),
    }


def run_all(scenarios=SCENARIOS, strategies=STRATEGIES, repeat: int = 1) -> list[dict]:
    """Every strategy in every scenario, ``repeat`` rounds (round-robin, so that the load of
    a shared machine falls on all strategies alike); ``auto`` last in each round."""
    from hybrid_provider.backends.local.backend import LocalBackend

    rows = []
    with tempfile.TemporaryDirectory(prefix="hq-bench-placement-") as folder:
        store = f"file://{folder}/store"
        backend = LocalBackend(store, quota=dict(QUOTA))
        for s, scenario in enumerate(scenarios):
            marks = Path(folder) / f"preempt-{s}"
            marks.mkdir()
            for r, strategy in ((r, st) for r in range(repeat) for st in strategies):
                if scenario.preempt_gpu:
                    os.environ[PREEMPT] = str(marks)
                try:
                    row = run_once(backend, store, scenario, strategy, f"{s}-{strategy}-{r}")
                finally:
                    os.environ.pop(PREEMPT, None)
                print(f"{scenario.name:15} {strategy:5} {row['makespan_s']:7.2f} s  "
                      f"ran on {row['ran_on']}, moved {row['moved']}", flush=True)  # fmt: skip
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The table for docs/performance.md: median makespan per strategy (with the range when
    repeated), auto against the best fixed."""
    lines = [
        "| scenario | cpu | gpu | qpu | auto | auto's last run on (moved) | auto / best | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in SCENARIOS:
        mine = [r for r in rows if r["scenario"] == scenario.name]
        times = {s: sorted(r["makespan_s"] for r in mine if r["strategy"] == s) for s in STRATEGIES}
        if not all(times.values()):
            continue
        median = {s: statistics.median(t) for s, t in times.items()}
        fixed = {s: median[s] for s in ("cpu", "gpu", "qpu")}
        auto = median["auto"]
        best, worst = min(fixed.values()), max(fixed.values())
        goal = "met" if auto <= 1.1 * best else ("not met" if auto <= worst else "worse than worst")
        if auto < best:
            goal += ", beats every fixed flavor"
        cells = [_cell(times[s]) for s in STRATEGIES]
        last = [r for r in mine if r["strategy"] == "auto"][-1]
        lines.append(
            f"| {scenario.name} | {' | '.join(cells[:3])} | **{cells[3]}** | {last['ran_on']} "
            f"({last['moved']}) | {auto / best:.2f} | {goal} |"
        )
    return "\n".join(lines)


def _cell(times: list[float]) -> str:
    middle = f"{statistics.median(times):.1f} s"
    return middle if len(times) == 1 else f"{middle} ({times[0]:.1f}–{times[-1]:.1f})"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {date.today().isoformat()}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every row (with auto's reasons) to this file")
    parser.add_argument("--scenario", action="append", help="only these scenarios (by name)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per scenario (median)")
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(),
                                                             os.environ.get("PYTHONPATH")]))  # fmt: skip
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    rows = run_all(chosen, repeat=args.repeat)
    print(f"\nMachine: {machine()}\n\n{markdown(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0 if all(r["phase"] == "Succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
