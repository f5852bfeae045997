"""The Airflow plugin that serves results reports over HTTP, and the links that point at it."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from hybrid_provider import plugins
from hybrid_provider.core.reconstruct.report import write_report

try:
    from tests.report_job import JOB_NAME, make_job
except ImportError:  # tests/ itself on sys.path
    from report_job import JOB_NAME, make_job  # type: ignore[no-redef]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    job = make_job(root)
    write_report(job["manifest_uri"], exact=None)
    (root / "secret.txt").write_text("not for browsers")
    return job


@pytest.fixture(scope="module")
def client(job):
    return TestClient(plugins.create_app(job["store_uri"], authenticate=False))


def test_serves_the_report_page_plot_and_values(client):
    page = client.get(f"/reports/{JOB_NAME}/report.html")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "ZZZZ" in page.text
    plot = client.get(f"/reports/{JOB_NAME}/report.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")
    values = client.get(f"/reports/{JOB_NAME}/results/reconstruction.json")
    assert values.status_code == 200 and values.json()["observables"] == ["ZZZZ", "XXXX", "IZZI"]


@pytest.mark.parametrize(
    "path",
    [
        f"{JOB_NAME}/manifest.json",  # a job file, but not a report file
        f"{JOB_NAME}/results/batch-00000.json",
        f"{JOB_NAME}/subexperiments/batch-00000.qpy",
        "secret.txt",
        "report.html",  # not inside a job
        "results/reconstruction.json",
        f"{JOB_NAME}/missing/report.html",
    ],
)
def test_refuses_other_files(client, path):
    assert client.get(f"/reports/{path}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "..%2Fsecret.txt",
        "nightly/..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/report.html",
        f"{JOB_NAME}/..%2F..%2Frun_1/cut/report.html",
        "%2Fetc%2Freport.html",
        "nightly%5C..%5Creport.html",
        "nightly//run_1/cut/report.html",
    ],
)
def test_refuses_traversal(client, path):
    response = client.get(f"/reports/{path}")
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    "relative",
    [
        "../report.html",
        "a/../../report.html",
        "/etc/report.html",
        "a/./report.html",
        "a\\..\\report.html",
        "a/report.html\x00.png",
        "",
    ],
)
def test_raw_paths_with_dots_are_refused(relative):
    assert plugins.relative_path_refused(relative)


def test_refuses_a_symlink_out_of_the_store(job, tmp_path, client):
    outside = tmp_path / "outside.html"
    outside.write_text("<p>elsewhere</p>")
    link_dir = job["job_dir"].parent / "linked"
    link_dir.mkdir()
    os.symlink(outside, link_dir / "report.html")
    assert client.get("/reports/nightly/run_1/linked/report.html").status_code == 404


def test_refuses_without_a_signed_in_user(job):
    guarded = TestClient(plugins.create_app(job["store_uri"]))
    response = guarded.get(f"/reports/{JOB_NAME}/report.html")
    assert response.status_code == 401


def test_object_stores_are_not_served():
    client = TestClient(plugins.create_app("memory://reports", authenticate=False))
    response = client.get(f"/reports/{JOB_NAME}/report.html")
    assert response.status_code == 404 and "memory://" in response.json()["detail"]


def test_report_url_goes_through_the_plugin_for_the_served_store(job):
    html_uri = job["manifest_uri"].replace("manifest.json", "report.html")
    store_uri = job["store_uri"]
    assert (
        plugins.report_url(html_uri, store_uri=store_uri, base_url="http://localhost:8080/")
        == f"http://localhost:8080/hybrid-quantum/reports/{JOB_NAME}/report.html"
    )
    assert plugins.report_url(html_uri, store_uri=store_uri, base_url="") == (
        f"/hybrid-quantum/reports/{JOB_NAME}/report.html"
    )


def test_report_url_elsewhere_is_the_uri(job, tmp_path):
    html_uri = job["manifest_uri"].replace("manifest.json", "report.html")
    other_store = "file://" + str(tmp_path / "other")
    assert plugins.report_url(html_uri, store_uri=other_store, base_url="http://x") == html_uri
    s3 = "s3://bucket/hq/nightly/run_1/cut/report.html"
    assert plugins.report_url(s3, store_uri="s3://bucket/hq", base_url="http://x") == s3


def test_the_plugin_mounts_one_app_outside_airflows_prefixes():
    (app,) = plugins.HybridQuantumPlugin.fastapi_apps
    assert app["url_prefix"] == "/hybrid-quantum"
    assert not any(
        app["url_prefix"].startswith(p) for p in ("/api/v2", "/ui", "/execution", "/auth")
    )
    routes = {route.path for route in app["app"].routes}
    assert "/reports/{relative:path}" in routes
