"""The placement policy, as a table: given a job, a snapshot and a history, which flavors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from hybrid_provider.constants import Flavor
from hybrid_provider.core.errors import InputError
from hybrid_provider.placement import FlavorTelemetry, History, JobShape, TelemetrySnapshot, place
from hybrid_provider.placement.history import BatchSample, RunRecord

CPU, GPU, QPU = Flavor.CPU, Flavor.GPU, Flavor.QPU
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


def snapshot(max_parallel=None, **flavors) -> TelemetrySnapshot:
    """``cpu=(slots, in_use, pending)``; a flavor left out has no queue."""
    return TelemetrySnapshot(
        backend="test",
        taken_at=NOW,
        max_parallel=max_parallel,
        flavors={
            Flavor(name): FlavorTelemetry(
                flavor=Flavor(name), has_queue=True, slots=s, in_use=u, pending=p
            )
            for name, (s, u, p) in flavors.items()
        },
    )


def history(mode="exact", width=3, **rates) -> History:
    """``gpu=0.01`` : one run with a 100-subexperiment batch at that many s/subexperiment."""
    return History(
        [
            RunRecord(
                workflow=f"earlier-{name}",
                backend="test",
                finished_at=NOW,
                mode=mode,
                width=width,
                batches=[
                    BatchSample(
                        flavor=Flavor(name),
                        subexperiments=100,
                        queue_s=0.0,
                        run_s=100 * rate,
                        attempts=1,
                        preemptions=0,
                        succeeded=True,
                    )
                ],
            )  # fmt: skip
            for name, rate in rates.items()
        ]
    )


def job(batches=4, size=100, mode="exact", width=3) -> JobShape:
    return JobShape(batches=dict.fromkeys(range(batches), size), width=width, mode=mode)


def flavors_of(placement) -> dict[Flavor, int]:
    counts: dict[Flavor, int] = {}
    for flavor in placement.assignment.values():
        counts[flavor] = counts.get(flavor, 0) + 1
    return counts


@pytest.mark.parametrize(
    ("shape", "telemetry", "learned", "expected"),
    [
        # idle, no history: GPU assumed no faster, so the flavor with more slots takes it all
        (job(), snapshot(cpu=(4, 0, 0), gpu=(1, 0, 0)), history(), {CPU: 4}),
        # the GPU measured 10x faster: everything goes there
        (job(), snapshot(cpu=(2, 0, 0), gpu=(1, 0, 0)), history(cpu=0.1, gpu=0.01), {GPU: 4}),
        # CPU saturated by other tenants: its queue pushes the job onto the GPU
        (job(), snapshot(cpu=(2, 2, 20), gpu=(1, 0, 0)), history(cpu=0.1, gpu=0.1), {GPU: 4}),
        # equal speeds, both free: splitting across cpu and gpu beats either alone
        (job(), snapshot(cpu=(2, 0, 0), gpu=(2, 0, 0)), history(cpu=0.1, gpu=0.1), {CPU: 2, GPU: 2}),
        # shots mode on a free, fast QPU is allowed
        (job(mode="shots"), snapshot(cpu=(1, 0, 0), qpu=(4, 0, 0)),
         history(mode="shots", cpu=1.0, qpu=0.1), {QPU: 4}),
        # ...but a long QPU queue sends it to the CPU
        (job(mode="shots"), snapshot(cpu=(1, 0, 0), qpu=(1, 1, 500)),
         history(mode="shots", cpu=0.1, qpu=0.05), {CPU: 4}),
    ],
)  # fmt: skip
def test_decisions_for_given_snapshots(shape, telemetry, learned, expected):
    placement = place(shape, telemetry, learned)
    assert flavors_of(placement) == expected
    assert sorted(placement.assignment) == sorted(shape.batches)
    assert placement.predicted_s is not None and placement.predicted_s > 0


def test_a_split_is_predicted_sooner_than_every_single_flavor():
    placement = place(job(), snapshot(cpu=(2, 0, 0), gpu=(2, 0, 0)), history(cpu=0.1, gpu=0.1))
    alone = [f.alone_s for f in placement.forecasts if not f.excluded]
    assert placement.predicted_s == pytest.approx(10.0)  # two rounds of 10 s became one
    assert all(placement.predicted_s <= a * 0.95 for a in alone)
    assert "split across flavors: predicted 10.0 s against 20.0 s" in placement.reasons[0]


def test_the_backends_parallel_cap_bounds_a_split():
    """The local runner runs at most one batch per core, whatever the quota."""
    capped = place(job(), snapshot(2, cpu=(2, 0, 0), gpu=(2, 0, 0)), history(cpu=0.1, gpu=0.1))
    assert capped.predicted_s == pytest.approx(20.0)
    assert flavors_of(capped) == {CPU: 4}  # no gain from splitting: the cheaper flavor alone


def test_exact_mode_never_goes_to_a_qpu_however_fast():
    placement = place(job(), snapshot(cpu=(1, 1, 50), qpu=(10, 0, 0)), history(cpu=1, qpu=1e-6))
    assert set(placement.assignment.values()) == {CPU}
    qpu = next(f for f in placement.forecasts if f.flavor == QPU)
    assert qpu.excluded == "exact mode never runs on a QPU"


def test_flavors_without_quota_or_queue_are_never_chosen():
    telemetry = TelemetrySnapshot(
        backend="test",
        taken_at=NOW,
        flavors={
            CPU: FlavorTelemetry(flavor=CPU, has_queue=True, slots=1, in_use=1, pending=99),
            GPU: FlavorTelemetry(flavor=GPU, has_queue=True, slots=0),
            QPU: FlavorTelemetry(flavor=QPU, has_queue=False, slots=8, note="no LocalQueue"),
        },
    )
    placement = place(job(mode="shots"), telemetry, history(mode="shots", gpu=1e-6, qpu=1e-6))
    assert set(placement.assignment.values()) == {CPU}
    assert [f.excluded for f in placement.forecasts] == [None, "no quota for this flavor",
                                                          "no LocalQueue"]  # fmt: skip


def test_no_eligible_flavor_is_one_clear_error():
    with pytest.raises(InputError, match="flavor auto found no flavor to run on .*qpu: exact"):
        place(job(), snapshot(qpu=(4, 0, 0)), History())


def test_an_explicit_flavor_always_wins():
    placement = place(job(), snapshot(cpu=(8, 0, 0)), History(), requested="qpu")
    assert set(placement.assignment.values()) == {QPU}
    assert placement.reasons == ["flavor qpu was asked for: placement was not consulted"]


def test_without_history_the_priors_are_used_and_said():
    placement = place(job(), snapshot(cpu=(2, 0, 0), gpu=(1, 0, 0)), History())
    assert placement.priors == [CPU, GPU]
    assert any("conservative priors" in reason for reason in placement.reasons)
    learned = place(job(), snapshot(cpu=(2, 0, 0), gpu=(1, 0, 0)), history(cpu=0.1, gpu=0.1))
    assert learned.priors == [] and not any("prior" in r for r in learned.reasons)


def test_lost_attempts_make_a_flavor_slower():
    flaky = history(cpu=0.1, gpu=0.05)
    sample = flaky.runs[1].batches[0]
    flaky.runs[1] = flaky.runs[1].model_copy(
        update={"batches": [sample.model_copy(update={"attempts": 4, "preemptions": 3})]}
    )
    placement = place(job(), snapshot(cpu=(4, 0, 0), gpu=(4, 0, 0)), flaky)
    gpu = next(f for f in placement.forecasts if f.flavor == GPU)
    assert gpu.rework_rate == pytest.approx(0.75)
    assert set(placement.assignment.values()) == {CPU}


def test_the_decision_log_names_the_numbers_compared():
    placement = place(job(), snapshot(cpu=(2, 0, 0), gpu=(2, 0, 0)), history(cpu=0.1, gpu=0.1))
    lines = placement.lines()
    assert lines[0] == "Placement (auto): cpu 2, gpu 2 batch(es), predicted to finish in 10.0 s"
    assert lines[1] == (
        "  cpu: 0/2 slots in use, 0 pending; 0.1 s/subexperiment (history: 1 exact batch(es)); "
        "predicted queue wait 0.0 s, whole job alone 20.0 s"
    )
