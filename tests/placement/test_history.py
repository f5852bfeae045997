"""The history index: one small file per finished run, the newest read, estimates from them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hybrid_provider.backends.status import (
    BatchPhase,
    BatchStatus,
    Reason,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.constants import Flavor
from hybrid_provider.placement.history import (
    HALF_LIFE_RUNS,
    HISTORY_FOLDER,
    BatchSample,
    History,
    RunRecord,
    load_history,
    record_run,
)

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def run(name: str, finished: datetime, flavor=Flavor.CPU, run_s=1.0, width=3) -> RunRecord:
    sample = BatchSample(flavor=flavor, subexperiments=10, queue_s=2.0, run_s=run_s, attempts=1,
                         preemptions=0, succeeded=True)  # fmt: skip
    return RunRecord(workflow=name, backend="local", finished_at=finished, mode="shots",
                     width=width, batches=[sample])  # fmt: skip


def test_one_entry_per_run_the_newest_read_and_a_retry_replaces_its_own(tmp_path):
    for n in range(5):
        record_run(str(tmp_path), run(f"hq-run-{n}", T0 + timedelta(minutes=n)))
    record_run(str(tmp_path), run("hq-run-1", T0 + timedelta(hours=1), run_s=3.0))  # a retry
    entries = sorted(p.name for p in (tmp_path / HISTORY_FOLDER).iterdir())
    assert len(entries) == 5 and entries[-1] == "20261201T010000-hq-run-1.json"
    newest = load_history(str(tmp_path), limit=2)
    assert [r.workflow for r in newest.runs] == ["hq-run-4", "hq-run-1"]


def test_an_unreadable_entry_is_skipped_and_an_empty_store_has_no_history(tmp_path):
    assert load_history(str(tmp_path)).empty
    record_run(str(tmp_path), run("hq-good", T0))
    (tmp_path / HISTORY_FOLDER / "20261202T000000-hq-bad.json").write_text("{not json")
    assert [r.workflow for r in load_history(str(tmp_path)).runs] == ["hq-good"]


def test_estimates_use_the_nearest_width_and_say_what_they_rest_on():
    history = History([run("a", T0, width=2, run_s=1.0), run("b", T0, width=6, run_s=4.0)])
    near = history.seconds_per_subexperiment(Flavor.CPU, "shots", 5)
    assert near.value == 0.4 and near.source == "history: 1 shots batch(es), nearest width 6"
    assert history.seconds_per_subexperiment(Flavor.CPU, "exact", 5) is None
    assert history.seconds_per_subexperiment(Flavor.GPU, "shots", 5) is None
    assert history.queue_seconds(Flavor.CPU).value == 2.0


def test_a_finished_run_becomes_an_entry_without_reused_results():
    from hybrid_provider.placement.history import run_record

    class Manifest:  # only what run_record reads
        class plan:  # noqa: N801
            subcircuit_widths = {"A": 3, "B": 4}

        batches = [type("B", (), {"index": i, "count": 7})() for i in range(2)]

    done = BatchStatus(index=0, flavor=Flavor.GPU, phase=BatchPhase.SUCCEEDED, attempts=2,
                       pending_since=T0, started_at=T0 + timedelta(seconds=5), duration_s=3.0,
                       reason=Reason.COMPLETED)  # fmt: skip
    reused = BatchStatus(index=1, flavor=Flavor.GPU, phase=BatchPhase.SUCCEEDED,
                         reason=Reason.RESULT_STORED)  # fmt: skip
    status = WorkflowStatus(name="hq-x", backend="local", phase=WorkflowPhase.SUCCEEDED,
                            finished_at=T0, batches=[done, reused])  # fmt: skip
    entry = run_record(status, Manifest, "exact")
    assert (entry.width, entry.mode, entry.finished_at) == (4, "exact", T0)
    assert entry.batches == [BatchSample(flavor=Flavor.GPU, subexperiments=7, queue_s=5.0,
                                         run_s=3.0, attempts=2, preemptions=0, succeeded=True)]  # fmt: skip
    assert History([entry]).rework_rate(Flavor.GPU).value == 0.5


def test_newer_runs_weigh_more_so_a_flavors_past_fades():
    """A run counts half once HALF_LIFE_RUNS newer runs are in: old losses and old speeds fade."""
    flaky = BatchSample(flavor=Flavor.GPU, subexperiments=10, queue_s=0.0, run_s=1.0, attempts=2,
                        preemptions=1, succeeded=True)  # fmt: skip
    runs = [run("old", T0).model_copy(update={"batches": [flaky]})]
    runs += [run(f"new-{n}", T0, flavor=Flavor.GPU, run_s=3.0) for n in range(HALF_LIFE_RUNS)]
    history = History(runs)
    # 1 of 2 attempts lost at weight 1/2, against 10 clean attempts at weights near 1
    rate = history.rework_rate(Flavor.GPU)
    weights = [0.5 ** (age / HALF_LIFE_RUNS) for age in range(HALF_LIFE_RUNS)]
    assert rate.value == pytest.approx(0.5 / (2 * 0.5 + sum(weights)))
    assert rate.source == "history: 12 attempt(s)"
    speed = history.seconds_per_subexperiment(Flavor.GPU, "shots", 3)
    assert speed.value == pytest.approx(
        (0.5 * 1.0 + 3.0 * sum(weights)) / (10 * (0.5 + sum(weights)))
    )
    assert History(runs[1:]).seconds_per_subexperiment(Flavor.GPU, "shots", 3).value == 0.3
