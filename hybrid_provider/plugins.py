"""An Airflow plugin that serves results reports to the browser, under ``/hybrid-quantum``.

Reports are written to the artifact store; on one machine that is a ``file://`` folder, which
a browser will not open from an http page. The API server mounts this small FastAPI app so the
task's *Results* link can point at ``{base_url}/hybrid-quantum/reports/<job path>/report.html``.

It serves only the report files of a job (:data:`REPORT_FILES`) from under the configured
store (``[hybrid_quantum] store_uri``), and only to a user whom Airflow's auth manager lets
read the DAG that made the job (see :func:`may_read_dag`). A job is a folder with a
``manifest.json``; anything else is refused: ``..``, absolute paths, other files, the local
backend's ``_runs/``, folders that are not jobs, symlinks and hard links.

Registered through the ``airflow.plugins`` entry point (see pyproject.toml).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hybrid_provider.backends.local.backend import RUNS_FOLDER  # runs' state: not jobs
from hybrid_provider.core import store
from hybrid_provider.core.manifest import MANIFEST_NAME
from hybrid_provider.core.reconstruct.report import REPORT_FILES, REPORT_HTML

URL_PREFIX = "/hybrid-quantum"
REPORTS_ROUTE = "/reports"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}
# Report pages carry no scripts; let them load only their own plot and inline styles.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_NOT_YOUR_DAG = "you may not read the DAG that made this job"
_NO_DAG = (
    "this job names no DAG (made by the CLI, or before jobs recorded their DAG): only users "
    "who may read every DAG can open it"
)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # a FIFO must not hang the request


def served_store_uri() -> str:
    """The store whose reports this API server serves: ``[hybrid_quantum] store_uri``."""
    from hybrid_provider.hooks.hybrid_quantum import default_store_uri

    return default_store_uri()


def report_url(html_uri: str, *, store_uri: str | None = None, base_url: str | None = None) -> str:
    """The browser URL of a report: through this plugin for the served ``file://`` store.

    Reports elsewhere (another folder, an object store) are linked by their URI as they are.
    Without ``[api] base_url`` the URL is relative to the UI's origin (``/hybrid-quantum/...``).
    """
    html_uri = store.normalise_uri(html_uri)
    root = store.normalise_uri(store_uri or served_store_uri())
    if not (root.startswith("file://") and html_uri.startswith(root + "/")):
        return html_uri
    relative = html_uri[len(root) + 1 :]
    if relative_path_refused(relative):
        return html_uri
    if base_url is None:
        base_url = _configured_base_url()
    return f"{base_url.rstrip('/')}{URL_PREFIX}{REPORTS_ROUTE}/{quote(relative)}"


def _configured_base_url() -> str:
    from airflow.sdk import conf

    return conf.get("api", "base_url", fallback="") or ""


def relative_path_refused(relative: str) -> str | None:
    """Why a requested path must not be served, or None when it names a report file of a job."""
    if not relative or "\\" in relative or "\x00" in relative or relative.startswith("/"):
        return "not a report path"
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "not a report path"
    if parts[0] == RUNS_FOLDER:
        return "only report files are served"
    name = posixpath.join(*parts[-2:]) if parts[-2:-1] == ["results"] else parts[-1]
    if name not in REPORT_FILES or len(parts) < (3 if name.startswith("results/") else 2):
        return "only report files are served"
    return None


def split_report_path(relative: str) -> tuple[list[str], list[str]]:
    """The job's folders and the report file's path inside the job, of an accepted path."""
    parts = relative.split("/")
    inside = 2 if parts[-2:-1] == ["results"] else 1
    return parts[:-inside], parts[-inside:]


def job_dag_id(manifest: Any) -> str | None:
    """The DAG that made a job: ``provenance.origin.dag_id`` of its raw manifest JSON.

    None when the manifest does not say: a job made by the CLI (``origin`` null), or one
    written before manifests recorded their provenance. The job's path is not evidence: a
    job name is whatever the DAG author or CLI user chose.
    """
    provenance = manifest.get("provenance") if isinstance(manifest, dict) else None
    origin = provenance.get("origin") if isinstance(provenance, dict) else None
    dag_id = origin.get("dag_id") if isinstance(origin, dict) else None
    return dag_id if isinstance(dag_id, str) and dag_id else None


def may_read_dag(user: Any, dag_id: str | None) -> bool:
    """Airflow's auth manager decides: read access to the DAG, or to every DAG when the job's
    DAG is unknown (a user who may read only some DAGs cannot read a report of no DAG)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    details = DagDetails(id=dag_id, team_name=_team_of(dag_id)) if dag_id else None
    return get_auth_manager().is_authorized_dag(method="GET", details=details, user=user)


def _team_of(dag_id: str) -> str | None:
    """The DAG's team, as Airflow's own DAG routes pass it; teams exist only in multi-team mode."""
    from airflow.configuration import conf
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id) if conf.getboolean("core", "multi_team") else None


_BEARER = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


async def signed_in(request: Request, credentials: Credentials) -> Any:
    """Airflow's own check: a bearer token, else the UI's session cookie.

    A browser that is not signed in (it asks for HTML) is sent to Airflow's login page, which
    brings it back here; API clients get Airflow's 401 or 403. Imported late: the API server
    has it loaded already, while the other components that load plugins (scheduler, workers)
    need not pay for it.
    """
    from hybrid_provider.version_compat import signed_in_user

    try:
        return await signed_in_user(request, credentials)
    except HTTPException:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        raise HTTPException(status_code=307, headers={"Location": login_url(request)}) from None


def login_url(request: Request) -> str:
    """Airflow's login route (``/api/v2/auth/login``), which hands over to the auth manager's
    page and checks that ``next`` stays on this server."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{API_ROOT_PATH}api/v2/auth/login?{urlencode({'next': here})}"


SignedInUser = Annotated[Any, Depends(signed_in)]


@contextlib.contextmanager
def _opened(path: str, flags: int, dir_fd: int | None) -> Iterator[int]:
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:  # missing, a symlink (ELOOP), not a folder: all the same to a reader
        raise HTTPException(status_code=404, detail="no such report") from exc
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _descend(dir_fd: int, parts: list[str]) -> Iterator[int]:
    """A descriptor of the folder ``parts`` below ``dir_fd``, opened one folder at a time
    without following a symlink, so no folder can be swapped for a link between the checks
    and the read."""
    with contextlib.ExitStack() as stack:
        for part in parts:
            dir_fd = stack.enter_context(_opened(part, _DIRECTORY, dir_fd))
        yield dir_fd


def _read_single_file(parts: list[str], dir_fd: int) -> bytes:
    """The bytes of a plain file below ``dir_fd`` that has no other hard link; 404 otherwise
    (a hard link would serve another job's file, or any file of the server's user)."""
    with _descend(dir_fd, parts[:-1]) as parent, _opened(parts[-1], _FILE, parent) as fd:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise HTTPException(status_code=404, detail="no such report")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()


def _job_manifest(job_fd: int) -> dict[str, Any]:
    """The raw manifest JSON of a job folder; 404 when the folder is not a job."""
    try:
        manifest = json.loads(_read_single_file([MANIFEST_NAME], job_fd))
    except (HTTPException, ValueError) as exc:
        raise HTTPException(status_code=404, detail="not a job") from exc
    if not isinstance(manifest, dict):
        raise HTTPException(status_code=404, detail="not a job")
    return manifest


def create_app(store_uri: str | None = None, *, check_access: bool = True) -> FastAPI:
    """The FastAPI app; ``store_uri`` defaults to the configured store, read per request.

    ``check_access=False`` (tests of the path rules only) serves without a user.
    """
    app = FastAPI(
        title="Hybrid Quantum reports",
        description="Results reports of circuit-cutting runs, from the artifact store.",
    )
    if not check_access:
        app.dependency_overrides[signed_in] = lambda: None

    @app.get(REPORTS_ROUTE + "/{relative:path}", name="report_file")
    def report_file(relative: str, user: SignedInUser) -> Response:
        why = relative_path_refused(relative)
        if why:
            raise HTTPException(status_code=404, detail=why)
        root_uri = store.normalise_uri(store_uri or served_store_uri())
        if not root_uri.startswith("file://"):
            raise HTTPException(
                status_code=404,
                detail=f"reports live in {root_uri}; open them there (only file:// is served)",
            )
        root = str(Path(root_uri.removeprefix("file://")).resolve())
        job, inside = split_report_path(relative)
        with (
            _opened(root, os.O_RDONLY | os.O_DIRECTORY, None) as root_fd,
            _descend(root_fd, job) as job_fd,
        ):
            dag_id = job_dag_id(_job_manifest(job_fd))
            if check_access and not may_read_dag(user, dag_id):
                raise HTTPException(status_code=403, detail=_NOT_YOUR_DAG if dag_id else _NO_DAG)
            content = _read_single_file(inside, job_fd)
        media_type = _MEDIA_TYPES[posixpath.splitext(inside[-1])[1]]
        return Response(content, media_type=media_type, headers=dict(_HEADERS))

    return app


class HybridQuantumPlugin(AirflowPlugin):
    """Serves results reports at ``/hybrid-quantum/reports/...`` in the API server."""

    name = "hybrid_quantum"
    fastapi_apps = [
        {
            "app": create_app(),
            "url_prefix": URL_PREFIX,
            "name": "Hybrid Quantum reports",
        }
    ]


__all__ = ["HybridQuantumPlugin", "REPORT_HTML", "create_app", "report_url"]
