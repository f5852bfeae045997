"""An EMULATED Kubernetes API server (aiohttp, real HTTP) with scripted Argo and Kueue controllers.

Its place: the real engines (tests/controlplane: kube-apiserver, Kueue and Argo built from
upstream) are the authority for the Kubernetes path. This emulation stays only for what they
cannot show quickly or at all: a Kueue serving only v1beta1 without the visibility API, Argo's
``compressedNodes`` (written only past ~1 MB of node status), a create race answered 409, a
queue wait of many minutes (backdated timestamps), and trigger polls at millisecond intervals.
Its controllers are ours, so it can only confirm what we already believe; never add a test
here that the real engines can run.

Not a Kubernetes: enough of the API conventions that the provider relies on, implemented
here and tested in test_emulator.py, so the hooks, operators, sensor and trigger can be
exercised over real HTTP with the official clients:

  * objects get ``uid``, ``resourceVersion`` (a global counter, bumped on every write),
    ``creationTimestamp`` and ``generation``;
  * errors are ``Status`` objects: 404 NotFound (with ``details.name`` for a missing object,
    without it for an unknown path or API version), 409 AlreadyExists / Conflict (stale
    ``metadata.resourceVersion`` in a patch), 415 for a patch type other than merge-patch,
    422 Invalid when an optional validator refuses a created object;
  * label selectors: ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key`` and ``!key``;
  * JSON merge-patch (RFC 7386);
  * the Kueue visibility API's ``pendingworkloads`` of a LocalQueue.

Controllers do nothing on their own: a test calls ``ArgoEmulation`` and ``KueueEmulation``
steps (create pods for a workflow, admit, preempt, finish, fail, stop, compress nodes),
which write what the real controllers would write (pods gated by ``kueue.x-k8s.io/admission``,
Workloads ``pod-<pod>-<hash>`` labelled ``kueue.x-k8s.io/job-uid``, conditions
QuotaReserved/Admitted/Finished/Evicted/Preempted/Requeued, Argo Retry and Pod nodes,
``pod deleted`` errors, ``status.progress`` and ``status.compressedNodes``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gzip
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

Obj = dict[str, Any]

ARGO = "argoproj.io"
KUEUE = "kueue.x-k8s.io"
VISIBILITY = "visibility.kueue.x-k8s.io"
GATE = "kueue.x-k8s.io/admission"

#: (group, plural) -> kind, namespaced. Versions are configured per server.
RESOURCES = {
    ("", "pods"): ("Pod", True),
    (ARGO, "workflows"): ("Workflow", True),
    (KUEUE, "workloads"): ("Workload", True),
    (KUEUE, "localqueues"): ("LocalQueue", True),
    (KUEUE, "clusterqueues"): ("ClusterQueue", False),
}


def now_text(offset_s: float = 0.0) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ conventions


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class SelectorError(ValueError):
    pass


_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)|\s+(?P<setop>in|notin)\s*"
    r"\((?P<values>[^)]*)\))?\s*$"
)


def parse_selector(text: str) -> list[Callable[[dict[str, str]], bool]]:
    """Kubernetes label selector -> list of predicates (all must hold)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    predicates = []
    for part in parts:
        match = _REQ.match(part)
        if not match or (match["neg"] and (match["op"] or match["setop"])):
            raise SelectorError(f"unable to parse requirement: {part!r}")
        key = match["key"]
        if match["op"] in ("=", "=="):
            predicates.append(lambda labels, k=key, v=match["value"]: labels.get(k) == v)
        elif match["op"] == "!=":
            predicates.append(lambda labels, k=key, v=match["value"]: labels.get(k) != v)
        elif match["setop"]:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            if match["setop"] == "in":
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                predicates.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match["neg"]:
            predicates.append(lambda labels, k=key: k not in labels)
        else:
            predicates.append(lambda labels, k=key: k in labels)
    return predicates


def status_object(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.body = status_object(code, reason, message, details)
        self.code = code


# ------------------------------------------------------------------------------ the server


class EmulatedKubernetes:
    """The object store and HTTP front end. Start with ``start()``; ``url`` is its address."""

    def __init__(
        self,
        kueue_versions: tuple[str, ...] = ("v1beta2", "v1beta1"),
        visibility: bool = True,
        validators: dict[str, Callable[[Obj], None]] | None = None,
    ):
        self.versions = {"": ("v1",), ARGO: ("v1alpha1",), KUEUE: kueue_versions}
        self.visibility = visibility
        self.validators = validators or {}
        self.lock = threading.RLock()
        self.store: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {
            key: {} for key in RESOURCES
        }
        self.logs: dict[tuple[str, str], str] = {}
        self.created: dict[tuple[str, ...], int] = {}  # creation order, for queue positions
        self.queue_ahead: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self._rv = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmulatedKubernetes:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="k8s-emulator")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, namespace: str = "default") -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "emulated-token"}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "emulated",
        }

    # --- direct store access (what controllers and tests use) -------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def put(self, group: str, plural: str, obj: Obj) -> Obj:
        """Create or replace an object as a controller would (no validation, new rv)."""
        with self.lock:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_text())
            meta["resourceVersion"] = self._next_rv()
            key = (meta.get("namespace", ""), meta["name"])
            self.created.setdefault((group, plural, *key), self._rv)
            self.store[(group, plural)][key] = obj
            return obj

    def get(self, group: str, plural: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            return self.store[(group, plural)].get((namespace or "", name))

    def objects(self, group: str, plural: str, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return [
                o
                for (ns, _), o in self.store[(group, plural)].items()
                if namespace is None or ns == namespace
            ]

    def delete(self, group: str, plural: str, namespace: str, name: str) -> None:
        with self.lock:
            self.store[(group, plural)].pop((namespace or "", name), None)
            self.created.pop((group, plural, namespace or "", name), None)
            if (group, plural) == ("", "pods"):  # ownerReference garbage collection
                for key, workload in list(self.store[(KUEUE, "workloads")].items()):
                    owners = workload["metadata"].get("ownerReferences") or []
                    if any(ref.get("name") == name for ref in owners) and key[0] == namespace:
                        del self.store[(KUEUE, "workloads")][key]

    def count(self, group: str, plural: str) -> int:
        return len(self.objects(group, plural))

    # --- HTTP --------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        with self.lock:
            self.requests.append((request.method, request.path))
        try:
            body = await request.read()
            with self.lock:
                return self._dispatch(request, body)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.code)

    def _not_found_path(self) -> ApiError:
        return ApiError(404, "NotFound", "the server could not find the requested resource")

    def _dispatch(self, request: web.Request, body: bytes) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["api"] and parts[1:2] == ["v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise self._not_found_path()
        namespace = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if group == VISIBILITY:
            return self._visibility(version, namespace, rest, request.method)
        if version not in self.versions.get(group, ()) or not rest:
            raise self._not_found_path()
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), rest[2:]
        if (group, plural) not in RESOURCES:
            raise self._not_found_path()
        kind, namespaced = RESOURCES[(group, plural)]
        if namespaced != bool(namespace) and not (not name and request.method == "GET"):
            raise self._not_found_path()
        api_version = f"{group}/{version}" if group else version
        method = request.method
        if not name:
            if method == "GET":
                return self._list(group, plural, kind, api_version, namespace, request.query)
            if method == "POST":
                return self._create(group, plural, kind, api_version, namespace, body)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
        existing = self.get(group, plural, namespace, name)
        if existing is None:
            raise ApiError(
                404,
                "NotFound",
                f'{plural}{"." + group if group else ""} "{name}" not found',
                {"name": name, "group": group, "kind": plural},
            )
        if sub == ["log"] and plural == "pods" and method == "GET":
            text = self.logs.get((namespace, name), "")
            tail = request.query.get("tailLines")
            if tail:
                text = "\n".join(text.splitlines()[-int(tail) :])
            return web.Response(text=text, content_type="text/plain")
        if sub:
            raise self._not_found_path()
        if method == "GET":
            return web.json_response(self._out(existing, api_version))
        if method == "PATCH":
            return self._patch(group, plural, api_version, existing, request, body)
        if method == "DELETE":
            self.delete(group, plural, namespace, name)
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Success",
                    "details": {"name": name},
                }
            )
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _out(obj: Obj, api_version: str) -> Obj:
        out = copy.deepcopy(obj)
        out["apiVersion"] = api_version
        return out

    def _list(self, group, plural, kind, api_version, namespace, query) -> web.Response:
        try:
            predicates = parse_selector(query.get("labelSelector", ""))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        items = [
            self._out(o, api_version)
            for o in self.objects(group, plural, namespace or None)
            if all(p(o["metadata"].get("labels") or {}) for p in predicates)
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return web.json_response(
            {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    def _create(self, group, plural, kind, api_version, namespace, body) -> web.Response:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON: {exc}") from exc
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "metadata.name or generateName is required")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match")
        if obj.get("kind") != kind:
            raise ApiError(400, "BadRequest", f"kind {obj.get('kind')} is not {kind}")
        if self.get(group, plural, namespace, meta["name"]) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{plural}.{group} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": group, "kind": plural},
            )
        validator = self.validators.get(kind)
        if validator is not None:
            try:
                validator(obj)
            except ValueError as exc:
                raise ApiError(422, "Invalid", f"{kind} is invalid: {exc}") from exc
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        stored = self.put(group, plural, obj)
        return web.json_response(self._out(stored, api_version), status=201)

    def _patch(self, group, plural, api_version, existing, request, body) -> web.Response:
        if request.content_type != "application/merge-patch+json":
            raise ApiError(415, "UnsupportedMediaType", f"{request.content_type} not supported")
        patch = json.loads(body)
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != existing["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict", "the object has been modified; please apply your changes "
                "to the latest version and try again"
            )  # fmt: skip
        merged = merge_patch(existing, patch)
        for key in ("uid", "name", "namespace", "creationTimestamp"):
            merged["metadata"][key] = existing["metadata"][key]
        if merged.get("spec") != existing.get("spec"):
            merged["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
        stored = self.put(group, plural, merged)
        return web.json_response(self._out(stored, api_version))

    def _visibility(self, version, namespace, rest, method) -> web.Response:
        if (
            not self.visibility
            or version not in ("v1beta2", "v1beta1")
            or method != "GET"
            or len(rest) != 3
            or rest[0] != "localqueues"
            or rest[2] != "pendingworkloads"
        ):
            raise self._not_found_path()
        queue = rest[1]
        ahead = self.queue_ahead.get((namespace, queue), 0)
        pending = [
            w
            for w in self.objects(KUEUE, "workloads", namespace)
            if w["spec"].get("queueName") == queue and not _true(w, "QuotaReserved")
            and not _true(w, "Finished")
        ]  # fmt: skip
        pending.sort(
            key=lambda w: self.created[(KUEUE, "workloads", namespace, w["metadata"]["name"])]
        )
        items = [
            {
                "metadata": {"name": w["metadata"]["name"], "namespace": namespace},
                "priority": w["spec"].get("priority", 0),
                "localQueueName": queue,
                "positionInClusterQueue": ahead + i,
                "positionInLocalQueue": ahead + i,
            }
            for i, w in enumerate(pending)
        ]
        return web.json_response(
            {
                "kind": "PendingWorkloadsSummary",
                "apiVersion": f"{VISIBILITY}/{version}",
                "metadata": {},
                "items": items,
            }
        )


def _true(obj: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _set_condition(obj: Obj, kind: str, status: bool, reason: str, message: str = "") -> None:
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    text = "True" if status else "False"
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] != text:
                cond["lastTransitionTime"] = now_text()
            cond.update(status=text, reason=reason, message=message)
            return
    conditions.append(
        {
            "type": kind,
            "status": text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_text(),
        }
    )


# ------------------------------------------------------------------------------ controllers


class KueueEmulation:
    """Plain-pod integration: one Workload per gated pod; admission, eviction, finishing."""

    def __init__(
        self, server: EmulatedKubernetes, cluster_queue: str = "hybrid-quantum-simulators"
    ):
        self.server = server
        self.cluster_queue = cluster_queue

    def workload_for(self, pod: Obj) -> Obj | None:
        uid = pod["metadata"]["uid"]
        for workload in self.server.objects(KUEUE, "workloads", pod["metadata"]["namespace"]):
            if workload["metadata"]["labels"].get("kueue.x-k8s.io/job-uid") == uid:
                return workload
        return None

    def observe(self, pod: Obj) -> Obj:
        """Kueue sees a new gated pod: create its Workload, pending for quota."""
        meta = pod["metadata"]
        digest = hashlib.sha256(meta["uid"].encode()).hexdigest()[:5]
        queue = meta["labels"].get("kueue.x-k8s.io/queue-name", "")
        workload = {
            "apiVersion": f"{KUEUE}/v1beta2",
            "kind": "Workload",
            "metadata": {
                "name": f"pod-{meta['name']}-{digest}",
                "namespace": meta["namespace"],
                "labels": {"kueue.x-k8s.io/job-uid": meta["uid"]},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
                ],
            },
            "spec": {
                "queueName": queue,
                "priorityClassName": meta["labels"].get("kueue.x-k8s.io/priority-class"),
                "podSets": [{"name": "main", "count": 1}],
            },
        }
        _set_condition(
            workload,
            "QuotaReserved",
            False,
            "Pending",
            f"couldn't assign flavors to pod set main: insufficient unused quota in "
            f"ClusterQueue {self.cluster_queue}",
        )
        return self.server.put(KUEUE, "workloads", workload)

    def admit(self, pod: Obj, flavor: str = "hybrid-quantum-cpu") -> None:
        with self.server.lock:
            workload = self.workload_for(pod)
            _set_condition(workload, "QuotaReserved", True, "QuotaReserved", "Quota reserved")
            _set_condition(workload, "Admitted", True, "Admitted", "The workload is admitted")
            for kind in ("Evicted", "Preempted"):
                if any(c["type"] == kind for c in workload["status"]["conditions"]):
                    _set_condition(workload, kind, False, "QuotaReserved")
            workload["status"]["admission"] = {
                "clusterQueue": self.cluster_queue,
                "podSetAssignments": [{"name": "main", "flavors": {"cpu": flavor}, "count": 1}],
            }
            self.server.put(KUEUE, "workloads", workload)
            pod["spec"]["schedulingGates"] = [
                g for g in pod["spec"].get("schedulingGates", []) if g["name"] != GATE
            ]
            self.server.put("", "pods", pod)

    def evict(self, pod: Obj, reason: str = "Preempted") -> None:
        with self.server.lock:
            workload = self.workload_for(pod)
            message = "Preempted to accommodate a workload (UID: 42) due to prioritization"
            _set_condition(workload, "Evicted", True, reason, message)
            if reason == "Preempted":
                _set_condition(workload, "Preempted", True, "InClusterQueue", message)
            _set_condition(workload, "QuotaReserved", False, "Pending", "evicted")
            _set_condition(workload, "Admitted", False, "NoReservation", "evicted")
            self.server.put(KUEUE, "workloads", workload)

    def finish(self, pod: Obj, succeeded: bool) -> None:
        with self.server.lock:
            workload = self.workload_for(pod)
            if workload is not None:
                reason = "Succeeded" if succeeded else "Failed"
                _set_condition(workload, "Finished", True, reason, f"the pod {reason.lower()}")
                self.server.put(KUEUE, "workloads", workload)


class ArgoEmulation:
    """The parts of the Argo controller the provider reads: pods and nodes for a fan-out DAG."""

    def __init__(self, server: EmulatedKubernetes, kueue: KueueEmulation):
        self.server = server
        self.kueue = kueue

    def workflow(self, namespace: str, name: str) -> Obj:
        found = self.server.get(ARGO, "workflows", namespace, name)
        assert found is not None, f"no workflow {name}"
        return found

    def _save(self, wf: Obj) -> None:
        nodes = wf["status"].get("nodes") or {}
        batches = [n for n in nodes.values() if n["type"] in ("Retry",)] or [
            n for n in nodes.values() if n["type"] == "Pod"
        ]
        done = sum(1 for n in batches if n["phase"] == "Succeeded")
        wf["status"]["progress"] = f"{done}/{len(batches)}"
        self.server.put(ARGO, "workflows", wf)

    def start(self, namespace: str, name: str) -> list[Obj]:
        """Reconcile a new workflow: Running, one Retry node + gated pod per batch."""
        with self.server.lock:
            wf = self.workflow(namespace, name)
            spec = wf["spec"]
            templates = {t["name"]: t for t in spec["templates"]}
            entry = templates[spec["entrypoint"]]
            wf["status"] = {"phase": "Running", "startedAt": now_text(), "nodes": {}}
            nodes = wf["status"]["nodes"]
            nodes[name] = {
                "id": name, "name": name, "displayName": name, "type": "DAG",
                "templateName": entry["name"], "phase": "Running", "startedAt": now_text(),
                "children": [],
            }  # fmt: skip
            pods = []
            for task in entry["dag"]["tasks"]:
                template = templates[task["template"]]
                for position, item in enumerate(task.get("withItems", [])):
                    display = f"{task['name']}({position}:{item})"
                    node_id = f"{name}-{_hash(display)}"
                    params = [{"name": "batch", "value": str(item)}]
                    nodes[node_id] = {
                        "id": node_id, "name": f"{name}.{display}", "displayName": display,
                        "type": "Retry" if template.get("retryStrategy") else "Pod",
                        "templateName": template["name"], "phase": "Pending",
                        "startedAt": now_text(), "inputs": {"parameters": params},
                        "boundaryID": name, "children": [],
                    }  # fmt: skip
                    nodes[name]["children"].append(node_id)
                    if template.get("retryStrategy"):
                        pods.append(self._attempt(wf, node_id, template))
                    else:
                        pods.append(self._pod_for(wf, nodes[node_id], template))
            self._save(wf)
            return pods

    def _attempt(self, wf: Obj, retry_id: str, template: Obj) -> Obj:
        nodes = wf["status"]["nodes"]
        retry = nodes[retry_id]
        attempt = len(retry["children"])
        node_id = f"{retry_id}-{attempt}"
        nodes[node_id] = {
            **{k: copy.deepcopy(v) for k, v in retry.items() if k not in ("children",)},
            "id": node_id, "name": f"{retry['name']}({attempt})",
            "displayName": f"{retry['displayName']}({attempt})", "type": "Pod",
            "phase": "Pending", "startedAt": now_text(), "children": [],
        }  # fmt: skip
        retry["children"].append(node_id)
        return self._pod_for(wf, nodes[node_id], template)

    def _pod_for(self, wf: Obj, node: Obj, template: Obj) -> Obj:
        params = {p["name"]: p["value"] for p in node["inputs"]["parameters"]}

        def fill(text: str) -> str:
            for key, value in params.items():
                text = text.replace("{{inputs.parameters." + key + "}}", value)
            return text

        labels = {
            **(wf["spec"].get("podMetadata") or {}).get("labels", {}),
            **{k: fill(v) for k, v in (template.get("metadata") or {}).get("labels", {}).items()},
            "workflows.argoproj.io/workflow": wf["metadata"]["name"],
        }
        queued = "kueue.x-k8s.io/queue-name" in labels
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{wf['metadata']['name']}-{template['name']}-{_hash(node['id'])}",
                "namespace": wf["metadata"]["namespace"],
                "labels": labels,
                "annotations": {
                    "workflows.argoproj.io/node-id": node["id"],
                    "workflows.argoproj.io/node-name": node["name"],
                },
            },  # fmt: skip
            "spec": {
                "schedulingGates": [{"name": GATE}] if queued else [],
                "containers": [
                    {"name": "main", "args": [fill(a) for a in template["container"]["args"]]}
                ],
            },
            "status": {"phase": "Pending"},
        }
        self.server.put("", "pods", pod)
        if queued:
            self.kueue.observe(pod)
        return pod

    # --- what happens to one batch ---------------------------------------------------------
    def pod_of(self, namespace: str, name: str, batch: int) -> Obj:
        pods = [
            p
            for p in self.server.objects("", "pods", namespace)
            if p["metadata"]["labels"].get("workflows.argoproj.io/workflow") == name
            and p["metadata"]["labels"].get("hybrid-quantum.io/batch") == str(batch)
        ]
        assert pods, f"no pod for batch {batch}"
        return max(pods, key=lambda p: int(p["metadata"]["resourceVersion"]))

    def _node(self, wf: Obj, pod: Obj) -> Obj:
        return wf["status"]["nodes"][
            pod["metadata"]["annotations"]["workflows.argoproj.io/node-id"]
        ]

    def _parent(self, wf: Obj, node: Obj) -> Obj | None:
        for candidate in wf["status"]["nodes"].values():
            if node["id"] in candidate.get("children", []) and candidate["type"] == "Retry":
                return candidate
        return None

    def admit(self, namespace: str, name: str, batch: int, run: bool = True) -> Obj:
        """Kueue admits the batch's pod; the pod starts running."""
        with self.server.lock:
            pod = self.pod_of(namespace, name, batch)
            self.kueue.admit(pod)
            if run:
                wf = self.workflow(namespace, name)
                pod["status"] = {"phase": "Running", "startTime": now_text()}
                self.server.put("", "pods", pod)
                node = self._node(wf, pod)
                node["phase"] = "Running"
                parent = self._parent(wf, node)
                if parent:
                    parent["phase"] = "Running"
                self._save(wf)
            return pod

    def finish(
        self, namespace: str, name: str, batch: int, exit_code: int = 0, message: str = ""
    ) -> None:
        with self.server.lock:
            wf = self.workflow(namespace, name)
            pod = self.pod_of(namespace, name, batch)
            ok = exit_code == 0
            pod["status"] = {
                "phase": "Succeeded" if ok else "Failed",
                "containerStatuses": [
                    {"name": "main", "state": {"terminated": {"exitCode": exit_code}}}
                ],
            }
            self.server.put("", "pods", pod)
            self.server.logs[(namespace, pod["metadata"]["name"])] = (
                f"batch {batch + 1} done\n" if ok else f"hybrid-quantum: error: {message}\n"
            )
            self.kueue.finish(pod, ok)
            node = self._node(wf, pod)
            node.update(
                phase="Succeeded" if ok else "Failed",
                finishedAt=now_text(),
                message="" if ok else (message or f"Error (exit code {exit_code})"),
                outputs={"exitCode": str(exit_code)},
            )
            self._conclude(wf, node, "Succeeded" if ok else "Failed", exit_code)
            if ok and wf["spec"].get("podGC", {}).get("strategy") == "OnPodSuccess":
                self.server.delete("", "pods", namespace, pod["metadata"]["name"])

    def preempt(self, namespace: str, name: str, batch: int, delete_pod: bool = True) -> None:
        """Kueue preempts the batch: its Workload is evicted, then the pod is deleted and Argo
        retries the step (the node's error is 'pod deleted')."""
        with self.server.lock:
            pod = self.pod_of(namespace, name, batch)
            self.kueue.evict(pod, "Preempted")
            if not delete_pod:
                return
            wf = self.workflow(namespace, name)
            self.server.delete("", "pods", namespace, pod["metadata"]["name"])
            node = self._node(wf, pod)
            node.update(phase="Error", message="pod deleted", finishedAt=now_text())
            self._conclude(wf, node, "Error", -1)

    def _conclude(self, wf: Obj, node: Obj, status: str, exit_code: int) -> None:
        """Argo's retry decision, evaluating the template's expression the way we wrote it."""
        parent = self._parent(wf, node)
        if parent is not None and status != "Succeeded":
            template = next(t for t in wf["spec"]["templates"] if t["name"] == node["templateName"])
            strategy = template["retryStrategy"]
            expression = strategy.get("expression", "")
            retry = (
                ("pod deleted" in node.get("message", "") and "pod deleted" in expression)
                or (status == "Error" and "'Error'" in expression)
                or (status == "Failed" and "!= 2" in expression and exit_code != 2)
            )
            if retry and len(parent["children"]) <= int(strategy.get("limit", 0)):
                self._attempt(wf, parent["id"], template)
                self._save(wf)
                return
        if parent is not None:
            parent.update(
                phase=node["phase"], message=node.get("message", ""), finishedAt=now_text()
            )
        nodes = wf["status"]["nodes"]
        top = [nodes[child] for child in nodes[wf["metadata"]["name"]]["children"]]
        if all(n["phase"] in ("Succeeded", "Failed", "Error") for n in top):
            failed = [n for n in top if n["phase"] != "Succeeded"]
            wf["status"]["phase"] = "Failed" if failed else "Succeeded"
            wf["status"]["finishedAt"] = now_text()
            if failed:
                wf["status"]["message"] = f"child '{failed[0]['id']}' failed"
            wf["status"]["nodes"][wf["metadata"]["name"]]["phase"] = wf["status"]["phase"]
        self._save(wf)

    def shutdown(self, namespace: str, name: str) -> None:
        """React to ``spec.shutdown``: unfinished nodes fail, their pods go, workflow Failed."""
        with self.server.lock:
            wf = self.workflow(namespace, name)
            how = wf["spec"].get("shutdown")
            if not how:
                return
            message = f"Stopped with strategy '{how}'"
            for node in wf["status"]["nodes"].values():
                if node["phase"] in ("Pending", "Running"):
                    node.update(phase="Failed", message=message, finishedAt=now_text())
            for pod in self.server.objects("", "pods", namespace):
                if pod["metadata"]["labels"].get("workflows.argoproj.io/workflow") == name:
                    self.server.delete("", "pods", namespace, pod["metadata"]["name"])
            wf["status"].update(phase="Failed", message=message, finishedAt=now_text())
            self._save(wf)

    def compress_nodes(self, namespace: str, name: str) -> None:
        """Offload nodes the way Argo does for large workflows (gzip + base64)."""
        with self.server.lock:
            wf = self.workflow(namespace, name)
            nodes = wf["status"].pop("nodes")
            packed = gzip.compress(json.dumps(nodes).encode())
            wf["status"]["compressedNodes"] = base64.b64encode(packed).decode()
            self.server.put(ARGO, "workflows", wf)


def _hash(text: str) -> str:
    return str(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
