"""The results report: an HTML page and a PNG plot per job, from the store alone."""

from __future__ import annotations

import html
import io
import json
import shutil
from datetime import timedelta

import pytest
from matplotlib.image import imread

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.provenance import Origin
from hybrid_provider.core.reconstruct import reference, report
from hybrid_provider.core.reconstruct.result import ReconstructionResult, result_uri

try:
    from tests.report_job import OBSERVABLES, make_job
except ImportError:  # tests/ itself on sys.path
    from report_job import OBSERVABLES, make_job  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return make_job(tmp_path_factory.mktemp("store"))


@pytest.fixture
def written(job):
    html_uri, png_uri = report.write_report(job["manifest_uri"])
    return {
        "html": store.read_bytes(html_uri).decode(),
        "png": store.read_bytes(png_uri),
        "html_uri": html_uri,
    }


def test_written_next_to_the_job(job, written):
    assert written["html_uri"] == job["manifest_uri"].replace("manifest.json", "report.html")
    assert (job["job_dir"] / "report.png").is_file()
    assert not list(job["job_dir"].glob("*.tmp-*"))  # atomic writes leave no temporaries


def test_html_shows_every_observable_with_value_and_error(job, written):
    page, payload = written["html"], job["payload"]
    for label, value, error in zip(
        payload["observables"], payload["values"], payload["std_errors"], strict=True
    ):
        assert label in page
        assert f"{value:+.10f}" in page
        assert f"{error:.3e}" in page
    assert "4000 shots per subexperiment" in page
    assert "numpy" in page


def test_html_shows_the_plan_timings_and_batches(job, written):
    page, manifest = written["html"], job["manifest"]
    plan = manifest.plan
    for text in (
        f"{plan.num_cuts} ({plan.num_gate_cuts} gate, {plan.num_wire_cuts} wire)",
        "A: 2, B: 2",
        f"<td>{plan.sampling_overhead:.6g}</td>",
        f"<td>{manifest.num_subexperiments}</td>",
        f"<td>{manifest.num_subexperiments_redundant}</td>",
        f"<td>{manifest.num_batches}</td>",
        html.escape("waiting: cut written → first batch started"),
        html.escape("execute: first batch started → last finished"),
        "total: wall time",
        "batch compute, summed over batches",
        "reconstruct",
    ):
        assert text in page, text
    batch_table = page.split('<table id="batches">')[1].split("</table>")[0]
    assert batch_table.count("<tr>") == 1 + manifest.num_batches
    assert 'src="report.png"' in page
    assert 'href="results/reconstruction.json"' in page
    assert "<script" not in page


def test_exact_values_shown_when_known(job, written):
    exact = reference.exact_expectation_values(job["manifest_uri"])
    assert exact is not None
    values = written["html"].split('<table id="values">')[1].split("</table>")[0]
    assert "<th>exact</th>" in values
    for value in exact:
        assert f"{value:+.10f}" in values


def test_without_exact_values_the_page_says_so(job, tmp_path):
    data = report.gather(job["manifest_uri"], exact=None)
    page = report.render_html(data)
    assert "<th>exact</th>" not in page
    assert "No exact values" in page
    png = report.render_png(data)
    assert png.startswith(b"\x89PNG")


def test_exact_values_are_left_out_for_wide_circuits(job, monkeypatch):
    monkeypatch.setattr(reference, "MAX_REFERENCE_QUBITS", 2)
    assert report.gather(job["manifest_uri"]).exact is None


def test_png_is_a_valid_image(written):
    assert written["png"].startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(io.BytesIO(written["png"]), format="png")
    height, width = pixels.shape[:2]
    assert (width, height) == (1200, 420)
    assert pixels.std() > 0.05  # something is drawn


def test_reads_the_stored_reconstruction_by_default(job):
    data = report.gather(job["manifest_uri"], exact=None)
    assert data.observables == OBSERVABLES
    assert data.values == job["payload"]["values"]
    assert data.reconstruct_seconds == pytest.approx(job["payload"]["seconds"])
    assert len(data.batches) == job["manifest"].num_batches
    assert all(b.duration_s and b.finished_at for b in data.batches)
    times = data.stage_times()
    assert times.compute_s == pytest.approx(sum(b.duration_s for b in data.batches))
    assert times.stages["cut: plan, generate, write"] == job["manifest"].cut_seconds > 0
    assert list(times.stages)[0].startswith("cut")


def test_a_missing_batch_record_leaves_a_gap_not_an_error(job, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(job["job_dir"], copy)
    (copy / "results" / "batch-00001.json").unlink()
    manifest_uri = store.normalise_uri(copy / "manifest.json")
    html_uri, _ = report.write_report(manifest_uri, exact=None)
    page = store.read_bytes(html_uri).decode()
    assert "—" in page.split('<table id="batches">')[1]


def test_no_reconstruction_no_report(job, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(job["job_dir"], copy)
    (copy / "results" / "reconstruction.json").unlink()
    with pytest.raises(ArtifactError, match="reconstruction result not found"):
        report.write_report(store.normalise_uri(copy / "manifest.json"))


def test_text_is_escaped(job):
    data = report.gather(
        job["manifest_uri"],
        exact=None,
        title="<script>alert(1)</script>",
        links={"<b>x</b>": 'https://example.invalid/"q'},
    )
    page = report.render_html(data)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "&quot;q" in page


def test_sparse_tick_labels():
    assert report._short("IIIIIZZIIIII") == "Z5 Z6"
    assert report._short("IIIIIIIIIIZZ") == "Z0 Z1"
    assert report._short("XXXX") == "XXXX"


def test_the_operator_writes_the_report_and_links_it(job, monkeypatch):
    from hybrid_provider.operators.reconstruct import CupyReconstructOperator

    monkeypatch.setenv("AIRFLOW__HYBRID_QUANTUM__STORE_URI", job["store_uri"])
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080/")
    operator = CupyReconstructOperator(
        task_id="reconstruct", manifest_uri=job["manifest_uri"], device="cpu"
    )
    result = operator.execute(context={})
    assert result["values"] == pytest.approx(job["payload"]["values"])
    assert operator.results_url == (
        "http://airflow.example:8080/hybrid-quantum/reports/nightly/run_1/cut/report.html"
    )
    assert (job["job_dir"] / "report.html").is_file()


def test_the_operators_report_links_the_run_that_cut_the_job(airflow_job, monkeypatch):
    from hybrid_provider.operators.reconstruct import CupyReconstructOperator

    monkeypatch.setenv("AIRFLOW__HYBRID_QUANTUM__STORE_URI", airflow_job["store_uri"])
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080/")
    CupyReconstructOperator(
        task_id="reconstruct", manifest_uri=airflow_job["manifest_uri"], device="cpu"
    ).execute(context={})
    page = (airflow_job["job_dir"] / "report.html").read_text()
    assert 'href="http://airflow.example:8080/dags/nightly/runs/manual__2026' in page
    assert "gap: last batch finished → reconstruction" in html.unescape(page)


def test_the_operator_survives_a_failing_report(job, monkeypatch):
    from hybrid_provider.operators.reconstruct import CupyReconstructOperator

    def broken(*args, **kwargs):
        raise RuntimeError("no plot today")

    monkeypatch.setattr(report, "write_report", broken)
    operator = CupyReconstructOperator(task_id="reconstruct", manifest_uri=job["manifest_uri"])
    result = operator.execute(context={})
    assert operator.results_url == result["results_uri"]


RUN_ID = "manual__2026-11-28T00:00:00+00:00"


@pytest.fixture(scope="module")
def airflow_job(tmp_path_factory):
    """A job cut by an Airflow task (the job path has the run id made safe for file names)."""
    origin = Origin(dag_id="nightly", run_id=RUN_ID, task_id="cut", try_number=1)
    return make_job(tmp_path_factory.mktemp("airflow-store"), origin=origin)


def test_the_stages_add_up_to_the_runs_wall_time(job):
    """The stages used to be a batch-compute sum, a wall time and the rest, which added up to
    nothing; now they follow one another from the cut to the end of reconstruction."""
    data = report.gather(job["manifest_uri"], exact=None)
    finished = data.last_batch_finished + timedelta(seconds=3.0 + job["payload"]["seconds"])
    published = ReconstructionResult.model_validate({**job["payload"], "finished_at": finished})
    times = report.gather(job["manifest_uri"], published, exact=None).stage_times()
    manifest = job["manifest"]
    wall = manifest.cut_seconds + (finished - report._aware(manifest.created_at)).total_seconds()
    assert times.wall_s == pytest.approx(sum(times.stages.values())) == pytest.approx(wall)
    assert times.stages["gap: last batch finished → reconstruction"] == pytest.approx(3.0)
    assert list(times.stages) == [
        "cut: plan, generate, write",
        "waiting: cut written → first batch started",
        "execute: first batch started → last finished",
        "gap: last batch finished → reconstruction",
        "reconstruct",
    ]
    assert "compute" not in " ".join(times.stages)  # it overlaps the stages: shown apart


def test_the_title_shows_the_run_id_and_the_page_links_the_airflow_run(airflow_job):
    data = report.gather(airflow_job["manifest_uri"], exact=None, airflow_url="http://af:8080/")
    assert data.title == f"Circuit cutting results: nightly, run {RUN_ID}"  # not run_1's path
    page = report.render_html(data)
    run = "http://af:8080/dags/nightly/runs/manual__2026-11-28T00%3A00%3A00%2B00%3A00"
    assert f'href="{run}"' in page and f'href="{run}/tasks/cut"' in page
    assert html.escape(RUN_ID) in page.split("<h1>")[1].split("</h1>")[0]
    relative = report.gather(airflow_job["manifest_uri"], exact=None, airflow_url="")
    assert relative.airflow_links()[f"run {RUN_ID}"].startswith("/dags/nightly/runs/")
    assert report.gather(airflow_job["manifest_uri"], exact=None).airflow_links() == {}


def test_the_table_shows_the_plots_labels(job, written):
    """The plot's ticks are the short form (``Z1 Z2``), the table had only ``IZZI``."""
    values = written["html"].split('<table id="values">')[1].split("</table>")[0]
    for label in OBSERVABLES:
        assert f'<td class="obs">{label}</td>' in values
        assert f'<td class="obs">{report._short(label)}</td>' in values
    assert "Z1 Z2" in values


def test_the_timeline_is_shown_and_times_the_first_start(job, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(job["job_dir"], copy)
    manifest_uri = store.normalise_uri(copy / "manifest.json")
    written_at = report._aware(job["manifest"].created_at)
    moments = [(written_at + timedelta(seconds=s)).isoformat() for s in (1, 4, 6, 1, 2, 5)]
    batches = [
        {"index": 0, "flavor": "cpu", "pending_since": moments[0], "started_at": moments[1],
         "finished_at": moments[2], "attempts": 1, "preemptions": []},
        {"index": 1, "flavor": "cpu", "pending_since": moments[3], "started_at": moments[4],
         "finished_at": moments[5], "attempts": 2, "preemptions": [{"at": moments[4]}]},
    ]  # fmt: skip
    (copy / "results" / "timeline.json").write_text(json.dumps({"batches": batches}))
    data = report.gather(manifest_uri, exact=None)
    assert [b.queued_s for b in data.timeline] == [3.0, 1.0]
    assert data.first_batch_started == written_at + timedelta(seconds=2)
    times = data.stage_times()  # scheduling and the queue apart, as the timeline tells them
    assert times.stages["scheduling: cut written → batches queued"] == pytest.approx(1.0)
    assert times.stages["queue: batches queued → first batch started"] == pytest.approx(1.0)
    assert "waiting: cut written → first batch started" not in times.stages
    table = report.render_html(data).split('<table id="timeline">')[1].split("</table>")[0]
    assert table.count("<tr>") == 3 and "3.000" in table
    assert report.render_png(data).startswith(b"\x89PNG")  # the Gantt chart draws


def test_a_malformed_published_result_is_refused_by_name(job):
    """One value too few used to draw a report with a missing row; now it is refused."""
    uri = result_uri(job["manifest_uri"])
    store.write_json_atomic(uri, {**job["payload"], "values": job["payload"]["values"][:-1]})
    with pytest.raises(ArtifactError, match="reconstruction result .* is malformed .*differ in"):
        report.gather(job["manifest_uri"], exact=None)
