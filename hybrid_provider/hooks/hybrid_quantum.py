"""One connection says where the quantum stage runs and where its artifacts live.

Switching a DAG from this machine to a cluster is an edit of this connection (backend
``kubernetes`` plus the id of a cncf-kubernetes ``kubernetes`` connection), not of the DAG.
Without the connection, everything runs on the local backend with the configured store.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook, conf
from airflow.sdk.exceptions import AirflowNotFoundException

from hybrid_provider.backends.base import WorkflowBackend, backend_from_connection
from hybrid_provider.core import store


def default_store_uri() -> str:
    configured = conf.get("hybrid_quantum", "store_uri", fallback=None)
    if configured:
        return store.normalise_uri(configured.replace("{AIRFLOW_HOME}", _airflow_home()))
    return store.normalise_uri(os.path.join(_airflow_home(), "hybrid-quantum"))


def _airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))


class HybridQuantumHook(BaseHook):
    """The ``hybrid_quantum`` connection: which backend, which store, and the backend's fields.

    Every operator of this provider gets its backend and store here, so one connection edit
    moves a DAG between backends. Task arguments (``backend``, ``store_uri``) override it.

    :param hybrid_conn_id: the connection; the default one may be absent (local backend).
    :param backend: a backend name overriding the connection's.
    :param store_uri: an artifact store overriding the connection's.
    """

    conn_name_attr = "hybrid_conn_id"
    default_conn_name = "hybrid_quantum_default"
    conn_type = "hybrid_quantum"
    hook_name = "Hybrid Quantum"

    def __init__(
        self,
        hybrid_conn_id: str = default_conn_name,
        *,
        backend: str | None = None,
        store_uri: str | None = None,
    ) -> None:
        super().__init__()
        self.hybrid_conn_id = hybrid_conn_id
        self._backend_override = backend
        self._store_override = store_uri

    def settings(self) -> dict[str, Any]:
        """Connection fields, overridden by what the task passed; the default connection may be absent."""
        extra: dict[str, Any] = {}
        try:
            extra = self.get_connection(self.hybrid_conn_id).extra_dejson
        except AirflowNotFoundException:
            if self.hybrid_conn_id != self.default_conn_name:
                raise
        store_uri = store.normalise_uri(
            self._store_override or extra.get("store_uri") or default_store_uri()
        )
        return {
            **extra,
            "backend": self._backend_override or extra.get("backend") or "local",
            "store_uri": store.check_local_root(store_uri),
        }

    @property
    def store_uri(self) -> str:
        return self.settings()["store_uri"]

    @property
    def default_flavor(self) -> str:
        """The connection's ``flavor`` (cpu, gpu, qpu or auto) for submits that name none."""
        return str(self.settings().get("flavor") or "cpu")

    def get_backend(self) -> WorkflowBackend:
        """The backend the connection names, built by its plugin from the connection's fields."""
        return backend_from_connection(self.settings())

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden_fields": ["host", "schema", "login", "password", "port", "extra"]}
