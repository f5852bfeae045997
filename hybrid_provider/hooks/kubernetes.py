"""Argo Workflows and Kueue through the Kubernetes API, on cncf-kubernetes' hooks.

``ArgoKueueHook`` (sync, for operators and poking sensors) and
``AsyncArgoKueueHook`` (for the trigger) subclass ``KubernetesHook`` and
``AsyncKubernetesHook``: cluster access is configured once, in a ``kubernetes`` connection,
and nowhere else. Objects go in and come out as plain JSON dicts (what ``kubectl get -o json``
shows), so the status code in ``hybrid_provider.backends.kubernetes.status`` reads the same
shapes from either hook.

What is reached:
  * Argo ``workflows`` (argoproj.io/v1alpha1): create, get, list, merge-patch (stop).
  * pods (v1) and their logs, by label selector.
  * Kueue ``workloads``, ``localqueues`` and ``clusterqueues`` (kueue.x-k8s.io/v1beta2, falling
    back to v1beta1 on clusters that do not serve v1beta2 yet).
  * Kueue's visibility API for the pending workloads of a LocalQueue (queue positions).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from airflow.providers.cncf.kubernetes.hooks.kubernetes import (
    AsyncKubernetesHook,
    KubernetesHook,
)

from hybrid_provider.core.errors import BackendError

ARGO_GROUP, ARGO_VERSION = "argoproj.io", "v1alpha1"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSIONS = ("v1beta2", "v1beta1")
VISIBILITY_GROUP = "visibility.kueue.x-k8s.io"
VISIBILITY_VERSIONS = ("v1beta2", "v1beta1")
MERGE_PATCH = "application/merge-patch+json"
# Keyed by int in kubernetes, by str in some kubernetes_asyncio releases: give both. Every 2xx
# a write can answer (201 Created, 202 Accepted) must be listed, or the client returns None.
_OBJECT: dict[Any, str] = {
    **{code: "object" for code in (200, 201, 202)},
    **{str(code): "object" for code in (200, 201, 202)},
}

Obj = dict[str, Any]


class KubernetesApiError(BackendError):
    """The API server refused a request; ``status`` is its HTTP status, ``reason`` the Status
    object's reason (NotFound, AlreadyExists, Forbidden, ...)."""

    def __init__(self, status: int, reason: str, message: str, details: dict | None = None):
        self.status, self.reason, self.details = status, reason, details or {}
        super().__init__(f"Kubernetes API: {status} {reason}: {message}")


def _api_error(exc: Exception) -> KubernetesApiError:
    status = getattr(exc, "status", 0) or 0
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {}
    reason = payload.get("reason") or getattr(exc, "reason", None) or "Error"
    message = payload.get("message") or str(body or exc)
    return KubernetesApiError(int(status), str(reason), str(message), payload.get("details"))


def object_missing(exc: KubernetesApiError) -> bool:
    """A 404 about a named object (its type is served), not about an unknown path or version."""
    return exc.status == 404 and bool(exc.details.get("name"))


def _q(text: str) -> str:
    return quote(text, safe="")


def custom_path(
    group: str, version: str, plural: str, namespace: str | None, name: str = ""
) -> str:
    base = f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{_q(namespace)}"
    base += f"/{plural}"
    return f"{base}/{_q(name)}" if name else base


def pods_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"/api/v1/namespaces/{_q(namespace)}/pods"
    if name:
        path += f"/{_q(name)}"
    return f"{path}/{sub}" if sub else path


def pending_path(version: str, namespace: str, local_queue: str) -> str:
    return (
        f"/apis/{VISIBILITY_GROUP}/{version}/namespaces/{_q(namespace)}/localqueues/"
        f"{_q(local_queue)}/pendingworkloads"
    )


#: Events the status reads: Kueue's preemptions of Workloads, the node's failed volume mounts.
EVENT_SELECTORS = (
    "involvedObject.kind=Workload,reason=Preempted",
    "involvedObject.kind=Pod,reason=FailedMount",
)


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/events"


def _query(label_selector: str | None = None, **extra: Any) -> list[tuple[str, Any]]:
    query = [("labelSelector", label_selector)] if label_selector else []
    return query + [(k, v) for k, v in extra.items() if v is not None]


class ArgoKueueHook(KubernetesHook):
    """Synchronous access to Argo Workflows, pods and Kueue through a ``kubernetes`` connection.

    :param kubernetes_conn_id: the cncf-kubernetes connection (kube_config, in_cluster, ...).
    """

    hook_name = "Argo Workflows and Kueue (through a Kubernetes connection)"

    def __init__(self, kubernetes_conn_id: str = KubernetesHook.default_conn_name, **kwargs):
        super().__init__(conn_id=kubernetes_conn_id, **kwargs)
        self._kueue_version: str | None = None

    # --- transport -----------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            result = self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                response_types_map={} if raw else _OBJECT,
                _return_http_data_only=True,
                _preload_content=not raw,
            )
        except ApiException as exc:
            raise _api_error(exc) from exc
        if raw:
            return result.data.decode(errors="replace")
        return result

    # --- Argo Workflows --------------------------------------------------------------------
    def create_workflow(self, body: Obj, namespace: str) -> Obj:
        return self.request(
            "POST", custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace), body=body
        )

    def get_workflow(self, name: str, namespace: str) -> Obj | None:
        try:
            return self.request(
                "GET", custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_workflows(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace)
        return self.request("GET", path, query=_query(label_selector)).get("items") or []

    def patch_workflow(self, name: str, namespace: str, patch: Obj) -> Obj:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def stop_workflow(self, name: str, namespace: str, how: str = "Stop") -> Obj:
        """``Stop`` runs exit handlers, ``Terminate`` does not; both stop pending and running pods."""
        return self.patch_workflow(name, namespace, {"spec": {"shutdown": how}})

    def delete_workflow(self, name: str, namespace: str, propagation: str = "Foreground") -> None:
        """Delete the workflow. ``Foreground`` (the default) keeps the object until the garbage
        collector has deleted the pods it owns, so its name is free only once they are gone."""
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        self.request("DELETE", path, body={"propagationPolicy": propagation})

    # --- pods ------------------------------------------------------------------------------
    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        return (
            self.request("GET", pods_path(namespace), query=_query(label_selector)).get("items")
            or []
        )

    def pod_log(self, name: str, namespace: str, container: str = "main", tail: int = 200) -> str:
        return self.request(
            "GET",
            pods_path(namespace, name, "log"),
            query=_query(container=container, tailLines=tail),
            raw=True,
        )

    def list_events(self, namespace: str) -> list[Obj]:
        """The events of ``EVENT_SELECTORS``; none where events may not be read (a nicety)."""
        found: list[Obj] = []
        for selector in EVENT_SELECTORS:
            try:
                listing = self.request("GET", events_path(namespace),
                                       query=_query(fieldSelector=selector))  # fmt: skip
            except KubernetesApiError as exc:
                self.log.warning(
                    "Cannot list events in %s (%s): preemption times and failed mounts are "
                    "not reported; grant 'list' on events (the chart's Airflow Role does)",
                    namespace, exc,
                )  # fmt: skip
                return found
            found += listing.get("items") or []
        return found

    # --- Kueue -----------------------------------------------------------------------------
    def _kueue(self, plural: str, namespace: str | None, name: str = "", query=None) -> Obj | None:
        versions = (self._kueue_version,) if self._kueue_version else KUEUE_VERSIONS
        last: KubernetesApiError | None = None
        for version in versions:
            try:
                found = self.request(
                    "GET", custom_path(KUEUE_GROUP, version, plural, namespace, name), query=query
                )
            except KubernetesApiError as exc:
                if exc.status != 404:
                    raise
                if object_missing(exc):
                    self._kueue_version = version
                    return None
                last = exc
                continue
            self._kueue_version = version
            return found
        if name:
            return None
        raise last or KubernetesApiError(404, "NotFound", "Kueue API not served")

    def list_workloads(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        return (self._kueue("workloads", namespace, query=_query(label_selector)) or {}).get(
            "items"
        ) or []

    def get_local_queue(self, name: str, namespace: str) -> Obj | None:
        return self._kueue("localqueues", namespace, name)

    def get_cluster_queue(self, name: str) -> Obj | None:
        return self._kueue("clusterqueues", None, name)

    def pending_workloads(self, namespace: str, local_queue: str) -> Obj | None:
        """The visibility API's pending workloads of a LocalQueue; None where it is not served
        or not allowed (positions are a nicety, never a reason to fail)."""
        for version in VISIBILITY_VERSIONS:
            try:
                return self.request("GET", pending_path(version, namespace, local_queue))
            except KubernetesApiError as exc:
                if exc.status == 404:
                    continue
                self.log.info("Kueue visibility API unavailable: %s", exc)
                return None
        return None


class AsyncArgoKueueHook(AsyncKubernetesHook):
    """The reads and the stop the trigger needs, without blocking the triggerer's loop."""

    def __init__(self, kubernetes_conn_id: str = KubernetesHook.default_conn_name, **kwargs):
        super().__init__(conn_id=kubernetes_conn_id, **kwargs)
        self._kueue_version: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        from kubernetes_asyncio.client.exceptions import ApiException

        headers = {"Accept": "application/json", "Content-Type": content_type}
        async with self.get_conn() as api:
            try:
                return await api.call_api(
                    path,
                    method,
                    query_params=query or [],
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                    response_types_map=_OBJECT,
                    _return_http_data_only=True,
                )
            except ApiException as exc:
                raise _api_error(exc) from exc

    async def get_workflow(self, name: str, namespace: str) -> Obj | None:
        try:
            return await self.request(
                "GET", custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
            )
        except KubernetesApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def stop_workflow(self, name: str, namespace: str, how: str = "Stop") -> Obj:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        return await self.request(
            "PATCH", path, body={"spec": {"shutdown": how}}, content_type=MERGE_PATCH
        )

    async def list_pods(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        found = await self.request("GET", pods_path(namespace), query=_query(label_selector))
        return found.get("items") or []

    async def list_events(self, namespace: str) -> list[Obj]:
        found: list[Obj] = []
        for selector in EVENT_SELECTORS:
            try:
                listing = await self.request("GET", events_path(namespace),
                                             query=_query(fieldSelector=selector))  # fmt: skip
            except KubernetesApiError:
                return found
            found += listing.get("items") or []
        return found

    async def list_workloads(self, namespace: str, label_selector: str | None = None) -> list[Obj]:
        versions = (self._kueue_version,) if self._kueue_version else KUEUE_VERSIONS
        for version in versions:
            try:
                found = await self.request(
                    "GET",
                    custom_path(KUEUE_GROUP, version, "workloads", namespace),
                    query=_query(label_selector),
                )
            except KubernetesApiError as exc:
                if exc.status == 404:
                    continue
                raise
            self._kueue_version = version
            return found.get("items") or []
        raise KubernetesApiError(404, "NotFound", "Kueue workloads are not served")

    async def pending_workloads(self, namespace: str, local_queue: str) -> Obj | None:
        for version in VISIBILITY_VERSIONS:
            try:
                return await self.request("GET", pending_path(version, namespace, local_queue))
            except KubernetesApiError as exc:
                if exc.status == 404:
                    continue
                return None
        return None
