"""An Airflow plugin that serves results reports to the browser, under ``/hybrid-quantum``.

Reports are written to the artifact store; on one machine that is a ``file://`` folder, which
a browser will not open from an http page. The API server mounts this small FastAPI app so the
task's *Results* link can point at ``{base_url}/hybrid-quantum/reports/<job path>/report.html``.

It serves only the report files of a job (:data:`REPORT_FILES`) from under the configured
store (``[hybrid_quantum] store_uri``), to logged-in users (the Airflow UI's session cookie or
a bearer token), and refuses anything else: ``..``, absolute paths, other files, symlinks out
of the store.

Registered through the ``airflow.plugins`` entry point (see pyproject.toml).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hybrid_provider.core import store
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
    name = posixpath.join(*parts[-2:]) if parts[-2:-1] == ["results"] else parts[-1]
    if name not in REPORT_FILES or len(parts) < (3 if name.startswith("results/") else 2):
        return "only report files are served"
    return None


_BEARER = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


async def logged_in(request: Request, credentials: Credentials) -> Any:
    """Airflow's own check: a bearer token, else the UI's session cookie.

    Imported late: the API server has it loaded already, while the other components that load
    plugins (scheduler, workers) need not pay for it.
    """
    from hybrid_provider.version_compat import signed_in_user

    return await signed_in_user(request, credentials)


def create_app(store_uri: str | None = None, *, authenticate: bool = True) -> FastAPI:
    """The FastAPI app; ``store_uri`` defaults to the configured store, read per request."""
    app = FastAPI(
        title="Hybrid Quantum reports",
        description="Results reports of circuit-cutting runs, from the artifact store.",
        dependencies=[Depends(logged_in)] if authenticate else [],
    )

    @app.get(REPORTS_ROUTE + "/{relative:path}", name="report_file")
    def report_file(relative: str) -> FileResponse:
        why = relative_path_refused(relative)
        if why:
            raise HTTPException(status_code=404, detail=why)
        root_uri = store.normalise_uri(store_uri or served_store_uri())
        if not root_uri.startswith("file://"):
            raise HTTPException(
                status_code=404,
                detail=f"reports live in {root_uri}; open them there (only file:// is served)",
            )
        root = Path(root_uri[len("file://") :]).resolve()
        target = root / relative
        # No symlinks below the store root: what is served is exactly the path asked for.
        if target.resolve() != target or not target.is_file():
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(target, media_type=_MEDIA_TYPES[target.suffix], headers=dict(_HEADERS))

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
