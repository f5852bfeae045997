"""The results report: an HTML page and a PNG plot per job, from the store alone."""

from __future__ import annotations

import html
import io
import shutil

import pytest
from matplotlib.image import imread

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.reconstruct import reference, report

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
        html.escape("execute: wall, cut written → last batch"),
        "execute: batch compute (sum)",
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
    stages = data.stage_seconds()
    assert stages["execute: batch compute (sum)"] == pytest.approx(
        sum(b.duration_s for b in data.batches)
    )
    assert stages["cut: plan, generate, write"] == job["manifest"].cut_seconds > 0
    assert list(stages)[0].startswith("cut")


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


def test_the_operator_survives_a_failing_report(job, monkeypatch):
    from hybrid_provider.operators.reconstruct import CupyReconstructOperator

    def broken(*args, **kwargs):
        raise RuntimeError("no plot today")

    monkeypatch.setattr(report, "write_report", broken)
    operator = CupyReconstructOperator(task_id="reconstruct", manifest_uri=job["manifest_uri"])
    result = operator.execute(context={})
    assert operator.results_url == result["results_uri"]
