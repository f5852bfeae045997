"""Argo Workflows and Kueue through the Kubernetes API, on cncf-kubernetes' hooks.

``ArgoKueueHook`` (sync, for operators and poking sensors) and
``AsyncArgoKueueHook`` (for the trigger) subclass ``KubernetesHook`` and
``AsyncKubernetesHook``: cluster access is configured once, in a ``kubernetes`` connection,
and nowhere else. Objects go in and come out as plain JSON dicts (what ``kubectl get -o json``
shows), so the status code in ``hybrid_provider.backends.kubernetes.status`` reads the same
shapes from either hook.

Every call is written once, as a *conversation* (:class:`KubernetesCalls`): a generator that
yields the :class:`Request` it needs next and receives the answer, or the API error thrown
into it. Each hook only drives conversations over its own transport, blocking or async, so
the two cannot drift apart (how a 404 is read, which Kueue version is served).

What is reached:
  * Argo ``workflows`` (argoproj.io/v1alpha1): create, get, list, merge-patch (stop).
  * pods (v1) and their logs, by label selector; a pending pod deleted only as it was read.
  * ConfigMaps (v1): the moves of a workflow whose batches re-placement may move.
  * Kueue ``workloads``, ``localqueues`` and ``clusterqueues`` (kueue.x-k8s.io/v1beta2, falling
    back to v1beta1 on clusters that do not serve v1beta2 yet).
  * Kueue's visibility API for the pending workloads of a LocalQueue (queue positions).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeVar
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


def configmaps_path(namespace: str, name: str = "") -> str:
    path = f"/api/v1/namespaces/{_q(namespace)}/configmaps"
    return f"{path}/{_q(name)}" if name else path


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


log = logging.getLogger(__name__)
T = TypeVar("T")


class Request(NamedTuple):
    """One request to the API server."""

    method: str
    path: str
    query: list[tuple[str, Any]] = []
    body: Any = None
    content_type: str = "application/json"
    raw: bool = False

    def call_api_arguments(self) -> dict[str, Any]:
        """``ApiClient.call_api``'s arguments, the same in kubernetes and kubernetes_asyncio."""
        return {
            "resource_path": self.path,
            "method": self.method,
            "query_params": self.query,
            "header_params": {"Accept": "application/json", "Content-Type": self.content_type},
            "body": self.body,
            "auth_settings": ["BearerToken"],
            "response_types_map": {} if self.raw else _OBJECT,
            "_return_http_data_only": True,
            "_preload_content": not self.raw,
        }


#: A conversation with the API server: yields requests, is sent each answer (or has the
#: KubernetesApiError thrown in), returns its result.
Call = Generator[Request, Any, T]


class conversation:  # noqa: N801 (used as a decorator, like property)
    """Turn a conversation into a hook method: blocking on ``ArgoKueueHook``, a coroutine on
    ``AsyncArgoKueueHook`` (each hook's ``drive`` says which)."""

    def __init__(self, function: Callable[..., Call]):
        self.function = function
        functools.update_wrapper(self, function)

    def __get__(self, hook: Any, owner: type | None = None) -> Any:
        if hook is None:
            return self
        return functools.partial(self, hook)

    def __call__(self, hook: Any, *args: Any, **kwargs: Any) -> Any:
        return hook.drive(self.function(hook, *args, **kwargs))


class KubernetesCalls:
    """Argo Workflows, pods and Kueue, as conversations both hooks hold (see module doc)."""

    #: The Kueue API version this cluster answered with; found on first use, per hook.
    _kueue_version: str | None = None

    # --- Argo Workflows --------------------------------------------------------------------
    @conversation
    def create_workflow(self, body: Obj, namespace: str) -> Call[Obj]:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace)
        return (yield Request("POST", path, body=body))

    @conversation
    def get_workflow(self, name: str, namespace: str) -> Call[Obj | None]:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        return (yield from _or_none_if_missing(Request("GET", path)))

    @conversation
    def list_workflows(self, namespace: str, label_selector: str | None = None) -> Call[list[Obj]]:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace)
        return (yield Request("GET", path, _query(label_selector))).get("items") or []

    @conversation
    def patch_workflow(self, name: str, namespace: str, patch: Obj) -> Call[Obj]:
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        return (yield Request("PATCH", path, body=patch, content_type=MERGE_PATCH))

    @conversation
    def stop_workflow(self, name: str, namespace: str, how: str = "Stop") -> Call[Obj]:
        """``Stop`` runs exit handlers, ``Terminate`` does not; both stop pending and running pods."""
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        patch = {"spec": {"shutdown": how}}
        return (yield Request("PATCH", path, body=patch, content_type=MERGE_PATCH))

    @conversation
    def delete_workflow(
        self, name: str, namespace: str, propagation: str = "Foreground"
    ) -> Call[None]:
        """Delete the workflow. ``Foreground`` (the default) keeps the object until the garbage
        collector has deleted the pods it owns, so its name is free only once they are gone."""
        path = custom_path(ARGO_GROUP, ARGO_VERSION, "workflows", namespace, name)
        yield Request("DELETE", path, body={"propagationPolicy": propagation})

    # --- pods and events -------------------------------------------------------------------
    @conversation
    def list_pods(self, namespace: str, label_selector: str | None = None) -> Call[list[Obj]]:
        return (yield Request("GET", pods_path(namespace), _query(label_selector))).get(
            "items"
        ) or []

    @conversation
    def delete_pending_pod(self, pod: Obj) -> Call[bool]:
        """Delete ``pod`` only as it was read (same uid and resourceVersion): False when it
        changed meanwhile (Kueue admitted it, the node started it) or is already gone."""
        meta = pod["metadata"]
        preconditions = {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}
        try:
            yield Request("DELETE", pods_path(meta["namespace"], meta["name"]),
                          body={"preconditions": preconditions})  # fmt: skip
        except KubernetesApiError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    # --- ConfigMaps ------------------------------------------------------------------------
    @conversation
    def get_configmap(self, name: str, namespace: str) -> Call[Obj | None]:
        return (yield from _or_none_if_missing(Request("GET", configmaps_path(namespace, name))))

    @conversation
    def apply_configmap_data(self, body: Obj) -> Call[Obj]:
        """Create the ConfigMap, or merge its ``data`` into the one that exists (a key set to
        None is removed)."""
        meta = body["metadata"]
        try:
            return (yield Request("POST", configmaps_path(meta["namespace"]), body=body))
        except KubernetesApiError as exc:
            if exc.status != 409:
                raise
        path = configmaps_path(meta["namespace"], meta["name"])
        return (yield Request("PATCH", path, body={"data": body["data"]}, content_type=MERGE_PATCH))

    @conversation
    def pod_log(
        self, name: str, namespace: str, container: str = "main", tail: int = 200
    ) -> Call[str]:
        query = _query(container=container, tailLines=tail)
        return (yield Request("GET", pods_path(namespace, name, "log"), query, raw=True))

    @conversation
    def list_events(self, namespace: str) -> Call[list[Obj]]:
        """The events of ``EVENT_SELECTORS``; none where events may not be read (a nicety)."""
        found: list[Obj] = []
        for selector in EVENT_SELECTORS:
            try:
                listing = yield Request(
                    "GET", events_path(namespace), _query(fieldSelector=selector)
                )
            except KubernetesApiError as exc:
                log.warning(
                    "Cannot list events in %s (%s): preemption times and failed mounts are "
                    "not reported; grant 'list' on events (the chart's Airflow Role does)",
                    namespace, exc,
                )  # fmt: skip
                return found
            found += listing.get("items") or []
        return found

    # --- Kueue -----------------------------------------------------------------------------
    def _kueue(
        self, plural: str, namespace: str | None, name: str = "", query=None
    ) -> Call[Obj | None]:
        """Try the Kueue versions this cluster may serve, newest first, and remember the one
        that answers. A named object that is missing is None; a type not served at all is an
        error for lists (nothing to read) and None for a named object."""
        versions = (self._kueue_version,) if self._kueue_version else KUEUE_VERSIONS
        last: KubernetesApiError | None = None
        for version in versions:
            path = custom_path(KUEUE_GROUP, version, plural, namespace, name)
            try:
                found = yield Request("GET", path, query or [])
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

    @conversation
    def list_workloads(self, namespace: str, label_selector: str | None = None) -> Call[list[Obj]]:
        found = yield from self._kueue("workloads", namespace, query=_query(label_selector))
        return (found or {}).get("items") or []

    @conversation
    def get_local_queue(self, name: str, namespace: str) -> Call[Obj | None]:
        return (yield from self._kueue("localqueues", namespace, name))

    @conversation
    def get_cluster_queue(self, name: str) -> Call[Obj | None]:
        return (yield from self._kueue("clusterqueues", None, name))

    @conversation
    def pending_workloads(self, namespace: str, local_queue: str) -> Call[Obj | None]:
        """The visibility API's pending workloads of a LocalQueue; None where it is not served
        or not allowed (positions are a nicety, never a reason to fail)."""
        for version in VISIBILITY_VERSIONS:
            try:
                return (yield Request("GET", pending_path(version, namespace, local_queue)))
            except KubernetesApiError as exc:
                if exc.status == 404:
                    continue
                log.info("Kueue visibility API unavailable: %s", exc)
                return None
        return None


def _or_none_if_missing(request: Request) -> Call[Obj | None]:
    try:
        return (yield request)
    except KubernetesApiError as exc:
        if exc.status == 404:
            return None
        raise


def _next_request(call: Call[T], answer: Any, error: KubernetesApiError | None) -> Request:
    """Advance a conversation by one answer; StopIteration carries its result."""
    return call.throw(error) if error is not None else call.send(answer)


class ArgoKueueHook(KubernetesCalls, KubernetesHook):
    """Blocking access to Argo Workflows, pods and Kueue through a ``kubernetes`` connection.

    :param kubernetes_conn_id: the cncf-kubernetes connection (kube_config, in_cluster, ...).
    """

    hook_name = "Argo Workflows and Kueue (through a Kubernetes connection)"

    def __init__(self, kubernetes_conn_id: str = KubernetesHook.default_conn_name, **kwargs):
        super().__init__(conn_id=kubernetes_conn_id, **kwargs)

    def drive(self, call: Call[T]) -> T:
        """Hold a conversation to its end over this hook's blocking client."""
        answer, error = None, None
        while True:
            try:
                request = _next_request(call, answer, error)
            except StopIteration as finished:
                return finished.value
            try:
                answer, error = self.request(request), None
            except KubernetesApiError as exc:
                answer, error = None, exc

    def request(self, request: Request) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            result = self.api_client.call_api(**request.call_api_arguments())
        except ApiException as exc:
            raise _api_error(exc) from exc
        if request.raw:
            return result.data.decode(errors="replace")
        return result


class AsyncArgoKueueHook(KubernetesCalls, AsyncKubernetesHook):
    """The same calls without blocking the triggerer's loop: each returns a coroutine."""

    def __init__(self, kubernetes_conn_id: str = KubernetesHook.default_conn_name, **kwargs):
        super().__init__(conn_id=kubernetes_conn_id, **kwargs)

    async def drive(self, call: Call[T]) -> T:
        """Hold a conversation to its end over one async client session."""
        from kubernetes_asyncio.client.exceptions import ApiException

        answer, error = None, None
        async with self.get_conn() as api:
            while True:
                try:
                    request = _next_request(call, answer, error)
                except StopIteration as finished:
                    return finished.value
                try:
                    response = await api.call_api(**request.call_api_arguments())
                    if request.raw:
                        response = (await response.read()).decode(errors="replace")
                    answer, error = response, None
                except ApiException as exc:
                    answer, error = None, _api_error(exc)
