"""The placement policy: which flavor each batch goes to, and why.

Hard rules first: an explicit flavor always wins (placement is not consulted); exact mode never
goes to a QPU; a flavor without quota or without a queue is never chosen. Among the rest, the
policy predicts each flavor's queue wait and run time and assigns batches, largest first, to
whichever flavor's slot would finish them soonest (list scheduling over every eligible flavor's
slots). It splits the job across flavors only when that is predicted to finish at least
``SPLIT_GAIN`` sooner than the best single flavor; otherwise the whole job goes there.

Queue wait comes from the live telemetry: the slots taken now free up after half a typical
batch, the workloads pending ahead take the next free slots, ours queue behind them. Run time
is seconds per subexperiment (from history, else a conservative prior) times the batch's
subexperiments, stretched by the share of attempts lost to failures and preemptions.
"""

from __future__ import annotations

import heapq
from collections import Counter

from pydantic import BaseModel, ConfigDict

from hybrid_provider.constants import FLAVORS, Flavor
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.manifest import JobManifest
from hybrid_provider.placement.history import Estimate, History
from hybrid_provider.placement.telemetry import FlavorTelemetry, TelemetrySnapshot

AUTO = "auto"
#: Seconds per subexperiment before any run has been seen. Conservative: a GPU is assumed no
#: faster than a CPU until measured, a QPU (queueing per job, calibration, shots) much slower.
PRIORS = {Flavor.CPU: 0.05, Flavor.GPU: 0.05, Flavor.QPU: 1.0}
#: A split must be predicted to finish this much sooner than the best single flavor.
SPLIT_GAIN = 0.05
#: Pending workloads simulated ahead of us at most (a longer queue changes nothing we decide).
MAX_SIMULATED_PENDING = 10_000
#: Cheaper flavors first when predictions tie.
PREFERENCE = (Flavor.CPU, Flavor.GPU, Flavor.QPU)


class JobShape(BaseModel):
    """What placement needs to know of a job: its batches' sizes, widest subcircuit, mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batches: dict[int, int]
    width: int
    mode: str

    @classmethod
    def of(cls, manifest: JobManifest, mode: str) -> JobShape:
        return cls(
            batches={batch.index: batch.count for batch in manifest.batches},
            width=max(manifest.plan.subcircuit_widths.values(), default=0),
            mode=mode,
        )


class Forecast(BaseModel):
    """One flavor as the policy saw it: eligible or why not, and the numbers it compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flavor: Flavor
    excluded: str | None = None
    slots: int = 0
    in_use: int = 0
    pending: int | None = None
    seconds_per_subexperiment: float | None = None
    rate_source: str | None = None
    rework_rate: float = 0.0
    queue_wait_s: float | None = None
    alone_s: float | None = None

    def line(self) -> str:
        if self.excluded:
            return f"{self.flavor.value}: not eligible ({self.excluded})"
        pending = "?" if self.pending is None else str(self.pending)
        rework = f", {self.rework_rate:.0%} of attempts lost" if self.rework_rate else ""
        return (
            f"{self.flavor.value}: {self.in_use}/{self.slots} slots in use, {pending} pending; "
            f"{self.seconds_per_subexperiment:.4g} s/subexperiment ({self.rate_source}){rework}; "
            f"predicted queue wait {self.queue_wait_s:.1f} s, whole job alone {self.alone_s:.1f} s"
        )


class Placement(BaseModel):
    """A flavor for every batch, and the reasons: what was asked, what each flavor offered,
    what was predicted. Goes to the task log, the run's timeline and the report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requested: str
    assignment: dict[int, Flavor]
    #: The workflow it was decided for: a retried submit reuses it (the same spec reattaches).
    workflow: str | None = None
    predicted_s: float | None = None
    forecasts: list[Forecast] = []
    reasons: list[str] = []
    priors: list[Flavor] = []

    @property
    def flavors(self) -> list[Flavor]:
        return sorted(set(self.assignment.values()))

    def counts(self) -> str:
        """``cpu 3, gpu 1``: batches per flavor."""
        found = Counter(self.assignment.values())
        return ", ".join(f"{flavor.value} {found[flavor]}" for flavor in sorted(found))

    def lines(self) -> list[str]:
        """The decision and its reasons, one line each (the task log's and the report's)."""
        head = f"Placement ({self.requested}): {self.counts()} batch(es)"
        if self.predicted_s is not None:
            head += f", predicted to finish in {self.predicted_s:.1f} s"
        return [head, *(f"  {f.line()}" for f in self.forecasts), *(f"  {r}" for r in self.reasons)]


def place(
    shape: JobShape,
    snapshot: TelemetrySnapshot | None,
    history: History,
    requested: str = AUTO,
) -> Placement:
    """Where each batch runs. ``requested`` is a flavor (it wins) or ``auto``.

    Raises:
        InputError: ``auto`` finds no flavor it may choose (the message names why each was out).
    """
    if requested != AUTO:
        if requested not in FLAVORS:
            raise InputError(
                f"unknown flavor '{requested}': use one of {', '.join(FLAVORS)} or {AUTO}"
            )
        flavor = Flavor(requested)
        return Placement(
            requested=requested,
            assignment=dict.fromkeys(shape.batches, flavor),
            reasons=[f"flavor {flavor.value} was asked for: placement was not consulted"],
        )
    if snapshot is None:
        raise InputError("flavor auto needs the backend's queue telemetry; name a flavor instead")
    forecasts = [_forecast(snapshot.of(f), shape, history) for f in PREFERENCE]
    eligible = [f for f in forecasts if not f.excluded]
    if not eligible:
        raise InputError(
            "flavor auto found no flavor to run on ("
            + "; ".join(f"{f.flavor.value}: {f.excluded}" for f in forecasts)
            + "): give the backend quota and a queue for one, or name a flavor"
        )
    slots = {f.flavor: _slot_times(snapshot.of(f.flavor), f, shape) for f in eligible}
    alone = {
        f.flavor: _schedule(shape, {f.flavor: slots[f.flavor]}, eligible, snapshot.max_parallel)
        for f in eligible
    }
    forecasts = [
        f.model_copy(update={"queue_wait_s": slots[f.flavor][0], "alone_s": alone[f.flavor][1]})
        if not f.excluded
        else f
        for f in forecasts
    ]
    best = min(alone, key=lambda flavor: (alone[flavor][1], PREFERENCE.index(flavor)))
    split = _schedule(shape, slots, eligible, snapshot.max_parallel)
    reasons = []
    if len(set(split[0].values())) > 1 and split[1] <= alone[best][1] * (1 - SPLIT_GAIN):
        assignment, predicted = split
        reasons.append(
            f"split across flavors: predicted {split[1]:.1f} s against {alone[best][1]:.1f} s "
            f"on {best.value} alone (the best single flavor)"
        )
    else:
        assignment, predicted = alone[best]
        reasons.append(
            f"{best.value} alone is predicted soonest ({alone[best][1]:.1f} s"
            + (f"; a split would take {split[1]:.1f} s" if len(set(split[0].values())) > 1 else "")
            + ")"
        )
    priors = [f.flavor for f in eligible if f.rate_source and f.rate_source.startswith("prior")]
    if priors:
        reasons.append(
            "no history for " + ", ".join(f.value for f in priors) + f" in {shape.mode} mode: "
            "conservative priors used ("
            + ", ".join(f"{f.value} {PRIORS[f]} s" for f in priors)
            + " per subexperiment; a GPU assumed no faster than a CPU until measured)"
        )
    return Placement(
        requested=AUTO,
        assignment=dict(sorted(assignment.items())),
        predicted_s=round(predicted, 3),
        forecasts=forecasts,
        reasons=reasons,
        priors=priors,
    )


def _forecast(telemetry: FlavorTelemetry, shape: JobShape, history: History) -> Forecast:
    """The flavor's eligibility and run-time estimate (its queue wait comes later)."""
    flavor = telemetry.flavor
    base = Forecast(flavor=flavor, slots=telemetry.slots, in_use=telemetry.in_use,
                    pending=telemetry.pending)  # fmt: skip
    if flavor == Flavor.QPU and shape.mode == "exact":
        return base.model_copy(update={"excluded": "exact mode never runs on a QPU"})
    if not telemetry.has_queue:
        return base.model_copy(update={"excluded": telemetry.note or "no queue for this flavor"})
    if telemetry.slots <= 0:
        return base.model_copy(update={"excluded": telemetry.note or "no quota for this flavor"})
    rate = history.seconds_per_subexperiment(flavor, shape.mode, shape.width) or Estimate(
        PRIORS[flavor], f"prior: no {shape.mode} runs on {flavor.value} yet"
    )
    rework = history.rework_rate(flavor)
    return base.model_copy(
        update={
            "seconds_per_subexperiment": rate.value,
            "rate_source": rate.source,
            "rework_rate": rework.value if rework else 0.0,
        }
    )


def _duration(forecast: Forecast, size: int) -> float:
    """A batch's predicted run time on the flavor, attempts lost included."""
    return size * (forecast.seconds_per_subexperiment or 0.0) / (1.0 - forecast.rework_rate)


def _slot_times(telemetry: FlavorTelemetry, forecast: Forecast, shape: JobShape) -> list[float]:
    """When each of the flavor's slots is free for us, soonest first: taken slots free after
    half a typical batch, pending workloads ahead take the next free slots."""
    typical = _duration(forecast, max(shape.batches.values(), default=0))
    times = [typical / 2] * min(telemetry.in_use, telemetry.slots) + [0.0] * telemetry.free
    heapq.heapify(times)
    for _ in range(min(telemetry.pending or 0, MAX_SIMULATED_PENDING)):
        heapq.heapreplace(times, times[0] + typical)
    return sorted(times)


def _schedule(
    shape: JobShape,
    slots: dict[Flavor, list[float]],
    forecasts: list[Forecast],
    max_parallel: int | None,
) -> tuple[dict[int, Flavor], float]:
    """List scheduling, largest batch first, onto the slot (of the given flavors) that would
    finish it soonest; ``max_parallel`` caps our batches running at once across flavors."""
    rates = {f.flavor: f for f in forecasts}
    free = {flavor: list(times) for flavor, times in slots.items()}
    workers = [0.0] * max_parallel if max_parallel else None
    assignment: dict[int, Flavor] = {}
    makespan = 0.0
    for index, size in sorted(shape.batches.items(), key=lambda item: (-item[1], item[0])):
        options = []
        for flavor, times in free.items():
            start = max(times[0], workers[0]) if workers else times[0]
            options.append((start + _duration(rates[flavor], size), PREFERENCE.index(flavor)))
        finish, rank = min(options)
        flavor = PREFERENCE[rank]
        heapq.heapreplace(free[flavor], finish)
        if workers:
            heapq.heapreplace(workers, finish)
        assignment[index] = flavor
        makespan = max(makespan, finish)
    return assignment, makespan
