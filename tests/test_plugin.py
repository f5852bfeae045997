"""The Airflow plugin that serves results reports over HTTP, and the links that point at it."""

from __future__ import annotations

import os
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient

from hybrid_provider import plugins
from hybrid_provider.core import store
from hybrid_provider.core.manifest import MANIFEST_NAME
from hybrid_provider.core.provenance import Origin
from hybrid_provider.core.reconstruct.report import write_report

try:
    from tests.report_job import JOB_NAME, make_job
except ImportError:  # tests/ itself on sys.path
    from report_job import JOB_NAME, make_job  # type: ignore[no-redef]


HIDDEN_DAG = "nightly"  # the DAG of JOB_NAME, hidden from OUTSIDER
OUTSIDER = "outsider"


def set_origin(job_dir, dag_id: str | None) -> None:
    """Record another maker in a copied job's manifest (None: the CLI), sealed again."""
    manifest_uri = store.normalise_uri(job_dir / MANIFEST_NAME)
    manifest = store.read_sealed_json(manifest_uri, "manifest")
    origin = None if dag_id is None else {"dag_id": dag_id, "run_id": "r", "task_id": "cut"}
    manifest["provenance"]["origin"] = origin
    store.write_sealed_json(manifest_uri, manifest)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    job = make_job(root, origin=Origin(dag_id=HIDDEN_DAG, run_id="run_1", task_id="cut"))
    write_report(job["manifest_uri"], exact=None)
    (root / "secret.txt").write_text("not for browsers")
    return job


@pytest.fixture(scope="module")
def client(job):
    return TestClient(plugins.create_app(job["store_uri"], check_access=False))


def copy_job(job, name: str, dag_id: str | None = HIDDEN_DAG):
    """Another job in the same store: the fixture's files under ``name``, made by ``dag_id``."""
    target = job["job_dir"].parents[2] / name
    shutil.copytree(job["job_dir"], target)
    set_origin(target, dag_id)
    return target


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


def test_refuses_a_symlinked_job_folder(job, client):
    os.symlink(job["job_dir"], job["job_dir"].parent / "alias")
    assert client.get("/reports/nightly/run_1/alias/report.html").status_code == 404
    results = copy_job(job, "nightly/run_2/cut")
    shutil.rmtree(results / "results")
    os.symlink(job["job_dir"] / "results", results / "results")
    assert client.get("/reports/nightly/run_2/cut/results/reconstruction.json").status_code == 404
    assert client.get("/reports/nightly/run_2/cut/report.html").status_code == 200


def test_refuses_a_hard_link(job, client):
    linked = copy_job(job, "nightly/run_3/cut")
    (linked / "report.html").unlink()
    os.link(job["job_dir"].parents[2] / "secret.txt", linked / "report.html")
    assert client.get("/reports/nightly/run_3/cut/report.html").status_code == 404
    assert client.get("/reports/nightly/run_3/cut/report.png").status_code == 200


def test_refuses_folders_that_are_not_jobs(job, client):
    root = job["job_dir"].parents[2]
    for folder in ("loose/run_1/cut", "_runs/nightly-run-1"):
        (root / folder).mkdir(parents=True)
        shutil.copy(job["job_dir"] / "report.html", root / folder / "report.html")
        assert client.get(f"/reports/{folder}/report.html").status_code == 404, folder
    # a manifest does not make the local backend's run folders servable
    shutil.copy(job["job_dir"] / "manifest.json", root / "_runs/nightly-run-1/manifest.json")
    assert client.get("/reports/_runs/nightly-run-1/report.html").status_code == 404
    not_json = copy_job(job, "nightly/run_4/cut")
    (not_json / MANIFEST_NAME).write_text("[]")
    assert client.get("/reports/nightly/run_4/cut/report.html").status_code == 404


def test_a_fifo_is_refused_at_once(job, client):
    fifo = copy_job(job, "nightly/run_5/cut") / "report.png"
    fifo.unlink()
    os.mkfifo(fifo)
    assert client.get("/reports/nightly/run_5/cut/report.png").status_code == 404


@pytest.mark.parametrize(
    "manifest, dag_id",
    [
        ({"provenance": {"origin": {"dag_id": "d", "run_id": "r", "task_id": "t"}}}, "d"),
        ({"provenance": {"origin": None}}, None),  # made by the CLI
        ({"job_name": "nightly/run_1/cut"}, None),  # before provenance: the path is no proof
        ({"provenance": {"origin": {"dag_id": ""}}}, None),
        ({"provenance": {"origin": {"dag_id": 7}}}, None),
        ({"provenance": {"origin": "d"}}, None),
        ({"provenance": None}, None),
        ([], None),
    ],
)
def test_the_job_dag_comes_from_the_manifest_provenance(manifest, dag_id):
    assert plugins.job_dag_id(manifest) == dag_id


def test_object_stores_are_not_served():
    client = TestClient(plugins.create_app("memory://reports", check_access=False))
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


class HidesOneDag(SimpleAuthManager):
    """Airflow's simple auth manager, except that OUTSIDER may not read HIDDEN_DAG (and so
    not every DAG), as a role with per-DAG permissions would in the FAB auth manager."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        hidden = details is None or details.id in (None, HIDDEN_DAG)
        if user.get_name() == OUTSIDER and hidden:
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )


@pytest.fixture(scope="module")
def airflow_api(job, airflow_db):
    """Airflow's own API server app, with this plugin mounted from its entry point, the auth
    manager above, and the fixture's store as ``[hybrid_quantum] store_uri``."""
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app

    settings = {
        "AIRFLOW__CORE__AUTH_MANAGER": f"{__name__}.HidesOneDag",
        "AIRFLOW__API_AUTH__JWT_SECRET": "report-access-test-secret-" + "x" * 40,
        "AIRFLOW__HYBRID_QUANTUM__STORE_URI": job["store_uri"],
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        client = TestClient(create_app("core"), follow_redirects=False)
        copy_job(job, "open_dag/run_1/cut", dag_id="open_dag")
        copy_job(job, "by-cli/job", dag_id=None)
        yield client, get_auth_manager()
    finally:
        purge_cached_app()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bearer(auth_manager, username: str, role: str | None) -> dict[str, str]:
    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    return {"Authorization": f"Bearer {token}"}


REPORTS = {
    "hidden": f"/hybrid-quantum/reports/{JOB_NAME}/report.html",
    "hidden values": f"/hybrid-quantum/reports/{JOB_NAME}/results/reconstruction.json",
    "open": "/hybrid-quantum/reports/open_dag/run_1/cut/report.html",
    "no dag": "/hybrid-quantum/reports/by-cli/job/report.png",
}


@pytest.mark.parametrize(
    "username, role, report, status",
    [
        ("admin", "admin", "hidden", 200),
        ("admin", "admin", "no dag", 200),
        ("vera", "viewer", "hidden", 200),  # a viewer reads every DAG in the simple manager
        ("vera", "viewer", "no dag", 200),
        (OUTSIDER, "viewer", "open", 200),
        (OUTSIDER, "viewer", "hidden", 403),
        (OUTSIDER, "viewer", "hidden values", 403),
        (OUTSIDER, "viewer", "no dag", 403),  # only for who may read every DAG
        ("nobody", None, "open", 403),  # signed in, but no role: no DAG at all
    ],
)
def test_reports_need_read_access_to_the_dag_of_the_job(
    airflow_api, username, role, report, status
):
    client, auth_manager = airflow_api
    response = client.get(REPORTS[report], headers=bearer(auth_manager, username, role))
    assert response.status_code == status, response.text


def test_the_ui_session_cookie_signs_in(airflow_api):
    client, auth_manager = airflow_api
    token = bearer(auth_manager, OUTSIDER, "viewer")["Authorization"].removeprefix("Bearer ")
    cookie = {"Cookie": f"_token={token}"}
    assert client.get(REPORTS["open"], headers=cookie).status_code == 200
    assert client.get(REPORTS["hidden"], headers=cookie).status_code == 403


def test_a_signed_out_browser_goes_to_the_login_page_and_api_clients_get_401(airflow_api):
    client, _ = airflow_api
    assert client.get(REPORTS["hidden"]).status_code == 401
    page = client.get(REPORTS["hidden"], headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 307
    login = urlsplit(page.headers["location"])
    assert login.path == "/api/v2/auth/login"
    assert parse_qs(login.query)["next"] == [REPORTS["hidden"]]
    onward = client.get(page.headers["location"])  # Airflow accepts the way back here
    assert onward.status_code == 307 and "/login" in onward.headers["location"]


def test_a_bad_token_is_refused_for_api_clients_and_sends_browsers_to_log_in(airflow_api):
    client, _ = airflow_api
    forged = {"Authorization": "Bearer not.a.token"}
    assert client.get(REPORTS["open"], headers=forged).status_code in (401, 403)
    browser = client.get(REPORTS["open"], headers={**forged, "Accept": "text/html"})
    assert browser.status_code == 307
