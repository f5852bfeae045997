"""``make bench-placement``: flavor="auto" against each fixed flavor, scenario by scenario.

Replays the scenarios of issue 12 on the local backend (its real queue, runner, quota,
re-placement and history) or, with ``--backend kubernetes``, on the real control plane of the
real-engine tests (kube-apiserver, Kueue and Argo from upstream, the chart installed, pods run
by the node agent; ``benchmarks/kueue_bench.py``). The job's batches run through
``hybrid-quantum``'s own path, but the *device time* is simulated by :class:`SimulatedDevice`, a
SamplerV2 that sleeps for the flavor's seconds per subexperiment before returning Aer's shots,
because this machine has neither a GPU nor a QPU (and two cores). Other tenants are real runs on
the same store (local) or in the same queues (Kueue).

    python -m benchmarks.placement [--backend local|kubernetes] [--json FILE] [--repeat N]

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from unittest.mock import patch

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


class LocalBench:
    """The local backend on a temporary store; a run's environment reaches its batches
    because the runner it starts inherits this process's."""

    name = "local"
    poll_s = 0.1

    def __init__(self, folder: Path):
        from hybrid_provider.backends.local.backend import LocalBackend

        self.folder = folder
        self.store = f"file://{folder}/store"
        self.backend = LocalBackend(self.store, quota=dict(QUOTA))

    def submit(self, spec, env: dict[str, str]) -> None:
        with patch.dict(os.environ, env):
            self.backend.submit(spec)


def _wait(bench, name: str):
    status = bench.backend.status(name)
    while not status.phase.finished:
        time.sleep(bench.poll_s)
        status = bench.backend.status(name)
    return status


def _start_tenants(bench, scenario: Scenario, tag: str) -> list[str]:
    from hybrid_provider.backends.spec import compile_spec

    names = []
    for n, tenant in enumerate(scenario.tenants):
        name = f"tenant-{tag}-{n}"
        job = _job(bench.store, name, tenant.batches)
        spec = compile_spec(job.manifest, job.manifest_uri, name, _options(), flavor=tenant.flavor)
        bench.submit(spec, {BATCH_SECONDS: str(tenant.seconds)})
        names.append(name)
    return names


def run_once(bench, scenario: Scenario, strategy: str, tag: str, env: dict[str, str]) -> dict:
    """One strategy in one scenario: tenants first, then ours; makespan and placement."""
    from hybrid_provider.placement import decide

    tenants = _start_tenants(bench, scenario, tag)
    if tenants:  # the tenants take their slots before ours is placed
        _wait_until_admitted(bench, tenants)
    job = _job(bench.store, f"ours-{tag}", BATCHES)
    name = f"ours-{tag}"
    started = time.monotonic()
    spec, placement = decide.placed_spec(
        bench.backend, job.manifest, job.manifest_uri, name, _options(), requested=strategy,
        store_uri=bench.store, replace_after=REPLACE_AFTER_S,
    )  # fmt: skip
    bench.submit(spec, env)
    status = _wait(bench, name)
    makespan = time.monotonic() - started
    decide.remember_run(job.manifest_uri, status, bench.store)
    for tenant in tenants:
        bench.backend.stop(tenant)
        _wait(bench, tenant)
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


def _wait_until_admitted(bench, names: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(any(b.state == "running" for b in bench.backend.status(n).batches) for n in names):
            return
        time.sleep(bench.poll_s)


def run_all(bench, scenarios=SCENARIOS, strategies=STRATEGIES, repeat: int = 1) -> list[dict]:
    """Every strategy in every scenario, ``repeat`` rounds (round-robin, so that the load of
    a shared machine falls on all strategies alike); ``auto`` last in each round."""
    rows = []
    for s, scenario in enumerate(scenarios):
        marks = bench.folder / f"preempt-{s}"
        marks.mkdir(exist_ok=True)
        env = {PREEMPT: str(marks)} if scenario.preempt_gpu else {}
        for r, strategy in ((r, st) for r in range(repeat) for st in strategies):
            row = run_once(bench, scenario, strategy, f"{s}-{strategy}-{r}", env)
            row["backend"] = bench.name
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


@contextmanager
def _bench(backend: str) -> Iterator[object]:
    if backend == "kubernetes":
        from benchmarks.kueue_bench import kueue_bench

        with kueue_bench(QUOTA) as bench:
            yield bench
        return
    with tempfile.TemporaryDirectory(prefix="hq-bench-placement-") as folder:
        yield LocalBench(Path(folder))


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {date.today().isoformat()}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every row (with auto's reasons) to this file")
    parser.add_argument("--scenario", action="append", help="only these scenarios (by name)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per scenario (median)")
    parser.add_argument("--backend", choices=("local", "kubernetes"), default="local",
                        help="kubernetes: the real engines (Go builds them on first use)")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(),
                                                             os.environ.get("PYTHONPATH")]))  # fmt: skip
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    with _bench(args.backend) as bench:
        rows = run_all(bench, chosen, repeat=args.repeat)
    print(f"\nMachine: {machine()}; backend: {args.backend}\n\n{markdown(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0 if all(r["phase"] == "Succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
