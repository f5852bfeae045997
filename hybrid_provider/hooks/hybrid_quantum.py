"""One connection says where the quantum stage runs and where its artifacts live.

Switching a DAG from this machine to a cluster is an edit of this connection (backend
``kubernetes`` plus the id of a cncf-kubernetes ``kubernetes`` connection), not of the DAG.
Without the connection, everything runs on the local backend with the configured store.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import BaseHook, conf
from airflow.sdk.exceptions import AirflowNotFoundException

from hybrid_provider.backends.base import WorkflowBackend, get_backend
from hybrid_provider.constants import FLAVORS
from hybrid_provider.core import store
from hybrid_provider.core.errors import InputError


def default_store_uri() -> str:
    configured = conf.get("hybrid_quantum", "store_uri", fallback=None)
    if configured:
        return store.normalise_uri(configured.replace("{AIRFLOW_HOME}", _airflow_home()))
    return store.normalise_uri(os.path.join(_airflow_home(), "hybrid-quantum"))


def _airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))


class HybridQuantumHook(BaseHook):
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

    def get_backend(self) -> WorkflowBackend:
        settings = self.settings()
        if settings["backend"] == "local":
            quota = local_quota(settings.get("local_quota") or None)
            return get_backend("local", store_uri=settings["store_uri"], quota=quota)
        options = {k: v for k, v in settings.items() if k not in ("backend", "local_quota")}
        return get_backend(settings["backend"], **options)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden_fields": ["host", "schema", "login", "password", "port", "extra"]}


def local_quota(value: str | dict | None) -> dict[str, int] | None:
    """The connection's local quota: slots per flavor, typed into the form as JSON."""
    example = '{"cpu": 2, "gpu": 1, "qpu": 1}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"local_quota must be JSON such as {example}: {exc}") from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(
            f"local_quota must be a JSON object of slots per flavor such as {example}, "
            f"got a {type(value).__name__}"
        )
    for flavor, slots in value.items():
        if flavor not in FLAVORS:
            raise InputError(
                f"local_quota names unknown flavor '{flavor}'; use {', '.join(FLAVORS)}"
            )
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise InputError(f"local_quota slots for '{flavor}' must be a whole number such as 2")
        if slots < 0:
            raise InputError(f"local_quota slots for '{flavor}' must be 0 or more")
    return value
