"""The node agent: the kubelet's part of running pods, without a container runtime.

The real kubelet needs a container runtime, which this sandbox does not offer, so this agent
stands in for it on the control plane's Nodes. It watches the pods bound to those Nodes and runs
each one as local processes, the way the kubelet would:

  * volumes first: emptyDir, Secret, ConfigMap, downward API, projected (with a bound
    service-account token from the TokenRequest API) and hostPath, written as files. A Secret or
    ConfigMap that does not exist (and is not optional) keeps the pod in ContainerCreating with a
    ``FailedMount`` event, retried until it appears, as on a real node;
  * init containers in order, then the containers together, each in its own mount namespace in
    which every volumeMount is bind-mounted at its mountPath (so Argo's ``/var/run/argo`` and the
    service-account token land where argoexec looks for them). The real ``argoexec`` built from
    Argo's module runs the init, wait and emissary steps;
  * the container's env (values, ``$(VAR)`` references, downward-API fields, Secret and ConfigMap
    keys, ``envFrom`` with prefixes); a missing Secret there gives ``CreateContainerConfigError``;
  * status written back through the API: phase, conditions, init and container states with exit
    codes and reasons (Completed, Error, DeadlineExceeded), start and finish times;
  * ``activeDeadlineSeconds``; graceful deletion (SIGTERM, SIGKILL after the grace period, then
    the final delete, which finalizers such as Kueue's hold back); Node heartbeats and Leases.

What it does not do (docs/kubernetes.md says the same): no images (an image name picks a
folder of programs on this machine: ``argoexec`` images run the built argoexec, executor images
this machine's virtual environment), no resource limits or cgroups, no user switching
(``runAsUser`` is ignored: processes run as the agent's user), no read-only root filesystem,
no network namespaces, ports or probes, no restarts (``restartPolicy`` is taken as Never, which
is what Argo sets), and no logs API (logs are files under the pod's folder).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster import MARKER, NODES, State
from kubeapi import ApiError, KubeApi
from mounts import in_mount_namespace, namespace_init

Obj = dict[str, Any]
HEARTBEAT_SECONDS = 10
RETRY_SECONDS = 1.0
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STRATEGIC = "application/strategic-merge-patch+json"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodNotReady(Exception):
    """A volume or env source is missing: the kubelet retries, the pod keeps waiting."""

    def __init__(self, reason: str, message: str):
        self.reason, self.message = reason, message
        super().__init__(message)


@dataclass
class Container:
    spec: Obj
    init: bool = False
    process: subprocess.Popen | None = None
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str = ""
    log: Path | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")

    @property
    def name(self) -> str:
        return self.spec["name"]

    def status(self) -> Obj:
        state: Obj
        if self.exit_code is not None:
            state = {"terminated": {"exitCode": self.exit_code, "startedAt": self.started,
                                    "finishedAt": self.finished,
                                    "reason": self.reason or ("Completed" if self.exit_code == 0
                                                              else "Error"),
                                    **({"message": self.message} if self.message else {})}}  # fmt: skip
        elif self.process is not None:
            state = {"running": {"startedAt": self.started}}
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        return {"name": self.name, "image": self.spec.get("image", ""), "imageID": "",
                "containerID": f"agent://{self.name}", "ready": "running" in state,
                "restartCount": 0, "started": "running" in state, "state": state}  # fmt: skip


@dataclass
class Images:
    """Image name -> folders of programs that stand in for the image's filesystem."""

    rules: list[tuple[str, list[str]]] = field(default_factory=list)

    def path_for(self, image: str) -> str | None:
        for pattern, folders in self.rules:
            if re.search(pattern, image):
                return ":".join([*folders, BASE_PATH])
        return None


class PodRunner(threading.Thread):
    """Runs one pod from volumes to its final status, and stops it when it is deleted."""

    def __init__(self, agent: Agent, pod: Obj):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.agent = agent
        self.api = agent.new_api()
        self.pod = pod
        meta = pod["metadata"]
        self.namespace, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.folder = agent.root / self.uid
        spec = pod["spec"]
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers", [])]
        self.containers = [Container(c) for c in spec.get("containers", [])]
        self.stop_requested = threading.Event()
        self.grace = float(spec.get("terminationGracePeriodSeconds", 30))
        self.start_time = now()
        self.started_monotonic = time.monotonic()
        self.deadline = spec.get("activeDeadlineSeconds")
        self.events_sent: set[str] = set()
        self.phase = "Pending"

    # --- status ----------------------------------------------------------------------------
    def write_status(self, phase: str | None = None, reason: str | None = None,
                     message: str | None = None) -> None:  # fmt: skip
        if phase:
            self.phase = phase
        initialized = all(c.exit_code == 0 for c in self.init_containers)
        ready = self.phase == "Running" and all(c.process and c.exit_code is None
                                                for c in self.containers)  # fmt: skip
        conditions = [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": str(initialized)},
            {"type": "ContainersReady", "status": str(ready)},
            {"type": "Ready", "status": str(ready)},
        ]
        status: Obj = {
            "phase": self.phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}], "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [{**c, "lastTransitionTime": now()} for c in conditions],
            "containerStatuses": [c.status() for c in self.containers],
        }  # fmt: skip
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if reason:
            status["reason"], status["message"] = reason, message or reason
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status"
        try:
            self.api.call("PATCH", path, {"status": status}, content_type=STRATEGIC)
        except ApiError as exc:
            if exc.status not in (404, 409, 422):
                raise

    def event(self, reason: str, message: str, kind: str = "Warning") -> None:
        if message in self.events_sent:
            return
        self.events_sent.add(message)
        stamp = now()
        self.api.call("POST", f"/api/v1/namespaces/{self.namespace}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{self.pod_name}.", "namespace": self.namespace},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": self.pod_name,
                               "namespace": self.namespace, "uid": self.uid},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "kubelet", "host": self.pod["spec"].get("nodeName", "")},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        })  # fmt: skip

    # --- the pod's life --------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.live()
        except Exception as exc:  # noqa: BLE001 (the agent keeps serving other pods)
            print(f"pod {self.namespace}/{self.pod_name}: {exc!r}", file=sys.stderr, flush=True)
        finally:
            self.kill_all(0)  # nothing of a pod outlives its runner
            self.agent.forget(self.uid)

    def live(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.write_status("Pending")
        volumes = self.wait_until(self.prepare_volumes, "FailedMount")
        if volumes is None:
            return self.finish_stopped()
        for container in self.init_containers:
            if not self.run_to_end([container], volumes):
                return self.finish_after_stop_or_failure()
        if not self.run_to_end(self.containers, volumes):
            return self.finish_after_stop_or_failure()
        failed = any(c.exit_code for c in self.containers)
        self.write_status("Failed" if failed else "Succeeded")
        self.final_delete_if_requested()

    def wait_until(self, attempt, event_reason: str):
        """Call ``attempt`` until it stops raising PodNotReady (or the pod is stopped)."""
        while not self.stop_requested.is_set():
            if self.past_deadline():
                return None
            try:
                return attempt()
            except PodNotReady as exc:
                for container in self.containers:
                    if container.process is None:
                        container.waiting = ("ContainerCreating", "") if exc.reason == \
                            "FailedMount" else (exc.reason, exc.message)  # fmt: skip
                self.write_status()
                self.event(event_reason if exc.reason == "FailedMount" else "Failed", exc.message)
                self.stop_requested.wait(RETRY_SECONDS)
        return None

    def past_deadline(self) -> bool:
        return self.deadline is not None and (
            time.monotonic() - self.started_monotonic > float(self.deadline)
        )

    def run_to_end(self, containers: list[Container], volumes: dict[str, Path]) -> bool:
        """Start ``containers`` and wait for all of them; False when stopped or failed early."""
        for container in containers:
            if (
                self.wait_until(lambda c=container: self.start_container(c, volumes), "Failed")
                is None
            ):
                return False
        self.write_status("Running" if not containers[0].init else "Pending")
        while any(c.exit_code is None for c in containers):
            if self.stop_requested.is_set() or self.past_deadline():
                return False
            for container in containers:
                self.collect(container)
            time.sleep(0.1)
        self.write_status()
        return not any(c.exit_code for c in containers if c.init)

    def collect(self, container: Container) -> bool:
        process = container.process
        if process is None or container.exit_code is not None:
            return False
        code = process.poll()
        if code is None:
            return False
        container.exit_code = code if code >= 0 else 128 - code
        container.finished = now()
        container.message = self.termination_message(container)
        self.write_status()
        return True

    @staticmethod
    def termination_message(container: Container) -> str:
        """With the policy FallbackToLogsOnError and a failure, the log's last lines (80 lines,
        2 KiB at most), as the kubelet reports them. (No termination-message file is mounted.)"""
        policy = container.spec.get("terminationMessagePolicy", "File")
        if not container.exit_code or policy != "FallbackToLogsOnError" or not container.log:
            return ""
        lines = container.log.read_text(errors="replace").splitlines()[-80:]
        return "\n".join(lines)[-2048:].strip()

    def finish_after_stop_or_failure(self) -> None:
        if self.past_deadline() and not self.stop_requested.is_set():
            self.kill_all(self.grace)
            self.write_status(
                "Failed",
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
            return
        if not self.stop_requested.is_set():  # an init container failed
            self.write_status("Failed")
            return
        self.finish_stopped()

    def finish_stopped(self) -> None:
        self.kill_all(self.grace)
        for container in self.containers + self.init_containers:
            if container.process is None and container.exit_code is None:
                container.waiting = ("ContainerCreating", "")
        failed = any(c.exit_code for c in self.containers) or any(
            c.exit_code is None for c in self.containers)  # fmt: skip
        self.write_status("Failed" if failed else "Succeeded")
        self.final_delete_if_requested()

    def final_delete_if_requested(self) -> None:
        if not self.stop_requested.is_set():
            return
        try:
            self.api.call(
                "DELETE",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def request_stop(self, grace: float | None) -> None:
        if grace is not None:
            self.grace = min(self.grace, grace)
        self.stop_requested.set()

    def kill_all(self, grace: float) -> None:
        running = [c for c in self.init_containers + self.containers
                   if c.process is not None and c.exit_code is None]  # fmt: skip
        for container in running:
            _signal(namespace_init(container.process.pid), signal.SIGTERM)  # its PID 1
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.process.poll() is None for c in running):
            time.sleep(0.1)
        for container in running:
            if container.process.poll() is None:  # a reaped PID may belong to someone else
                _signal_group(container.process.pid, signal.SIGKILL)
                container.process.wait()
            self.collect(container)

    # --- volumes ---------------------------------------------------------------------------
    def prepare_volumes(self) -> dict[str, Path]:
        folders = {}
        for volume in self.pod["spec"].get("volumes", []):
            name = volume["name"]
            if "hostPath" in volume:
                folders[name] = Path(volume["hostPath"]["path"])
                continue
            folder = self.folder / "volumes" / name
            folder.mkdir(parents=True, exist_ok=True)
            self.fill_volume(volume, folder)
            folders[name] = folder
        return folders

    def fill_volume(self, volume: Obj, folder: Path) -> None:
        name = volume["name"]
        if "emptyDir" in volume:
            return
        if "secret" in volume:
            source = volume["secret"]
            self.write_keys(folder, self.keys("secrets", source["secretName"],
                                              source.get("optional"), name), source)  # fmt: skip
        elif "configMap" in volume:
            source = volume["configMap"]
            self.write_keys(folder, self.keys("configmaps", source["name"],
                                              source.get("optional"), name), source)  # fmt: skip
        elif "downwardAPI" in volume:
            self.write_downward(folder, volume["downwardAPI"].get("items", []))
        elif "projected" in volume:
            for source in volume["projected"].get("sources", []):
                self.fill_projected(source, folder, name)
        else:
            raise PodNotReady("FailedMount", f'volume "{name}": type not supported by the agent')

    def fill_projected(self, source: Obj, folder: Path, volume: str) -> None:
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            (folder / token["path"]).write_text(self.token(token))
        elif "configMap" in source:
            cm = source["configMap"]
            self.write_keys(folder, self.keys("configmaps", cm["name"], cm.get("optional"),
                                              volume), cm)  # fmt: skip
        elif "secret" in source:
            secret = source["secret"]
            self.write_keys(folder, self.keys("secrets", secret["name"], secret.get("optional"),
                                              volume), secret)  # fmt: skip
        elif "downwardAPI" in source:
            self.write_downward(folder, source["downwardAPI"].get("items", []))

    def keys(self, plural: str, name: str, optional: bool | None, volume: str) -> dict[str, bytes]:
        found = self.api.get(f"/api/v1/namespaces/{self.namespace}/{plural}/{name}")
        if found is None:
            if optional:
                return {}
            kind = "secret" if plural == "secrets" else "configmap"
            raise PodNotReady("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : '
                                             f'{kind} "{name}" not found')  # fmt: skip
        if plural == "secrets":
            return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        return {k: v.encode() for k, v in (found.get("data") or {}).items()}

    @staticmethod
    def write_keys(folder: Path, data: dict[str, bytes], source: Obj) -> None:
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] in data:
                target = folder / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[item["key"]])

    def write_downward(self, folder: Path, items: list[Obj]) -> None:
        for item in items:
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if "fieldRef" in item:
                target.write_text(self.field(item["fieldRef"]["fieldPath"]))

    def token(self, request: Obj) -> str:
        account = self.pod["spec"].get("serviceAccountName") or "default"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": [request["audience"]] if request.get("audience") else None,
                         "expirationSeconds": request.get("expirationSeconds", 3607),
                         "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                            "name": self.pod_name, "uid": self.uid}}}  # fmt: skip
        path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token"
        return (self.api.call("POST", path, body) or {})["status"]["token"]

    def field(self, path: str) -> str:
        meta = self.pod["metadata"]
        simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "metadata.uid": meta["uid"], "spec.nodeName": self.pod["spec"].get("nodeName"),
                  "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName"),
                  "status.hostIP": "127.0.0.1", "status.podIP": "127.0.0.1"}  # fmt: skip
        if path in simple:
            return str(simple[path] or "")
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return (meta.get(match.group(1)) or {}).get(match.group(2), "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        return ""

    # --- containers ------------------------------------------------------------------------
    def environment(self, spec: Obj) -> dict[str, str]:
        port = self.agent.state.ports["apiserver"]
        env = {"HOSTNAME": self.pod_name, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(port), "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
               MARKER: self.agent.state.folder}  # fmt: skip
        for source in spec.get("envFrom", []):
            prefix = source.get("prefix", "")
            for kind, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                if kind in source:
                    ref = source[kind]
                    data = self.env_source(plural, ref["name"], ref.get("optional"))
                    env.update({prefix + k: v.decode() for k, v in data.items()})
        for variable in spec.get("env", []):
            env[variable["name"]] = self.env_value(variable, env)
        return env

    def env_source(self, plural: str, name: str, optional: bool | None) -> dict[str, bytes]:
        try:
            return self.keys(plural, name, optional, "")
        except PodNotReady:
            kind = "secret" if plural == "secrets" else "configmap"
            raise PodNotReady("CreateContainerConfigError", f'{kind} "{name}" not found') from None

    def env_value(self, variable: Obj, env: dict[str, str]) -> str:
        if "valueFrom" not in variable:
            return expand(variable.get("value", ""), env)
        source = variable["valueFrom"]
        if "fieldRef" in source:
            return self.field(source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            return resource_value(self.pod, source["resourceFieldRef"])
        for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in source:
                ref = source[kind]
                data = self.env_source(plural, ref["name"], ref.get("optional"))
                if ref["key"] not in data and not ref.get("optional"):
                    raise PodNotReady("CreateContainerConfigError",
                                      f'couldn\'t find key {ref["key"]} in {kind[:-6]} '
                                      f'{self.namespace}/{ref["name"]}')  # fmt: skip
                return data.get(ref["key"], b"").decode()
        return ""

    def start_container(self, container: Container, volumes: dict[str, Path]) -> bool:
        spec = container.spec
        path = self.agent.images.path_for(spec.get("image", ""))
        if path is None:
            raise PodNotReady(
                "ErrImagePull", f'image "{spec.get("image")}" is not known to the node agent'
            )
        env = {**self.environment(spec), "PATH": path}
        argv = [expand(part, env) for part in spec.get("command", []) + spec.get("args", [])]
        if not argv:
            raise PodNotReady("CreateContainerError", "no command: the agent has no image "
                                                      "entrypoints")  # fmt: skip
        mounts = []
        for mount in spec.get("volumeMounts", []):
            source = volumes.get(mount["name"])
            if source is None:
                raise PodNotReady(
                    "CreateContainerConfigError", f'volume "{mount["name"]}" not found'
                )
            if mount.get("subPath"):  # created when missing, as the kubelet does
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append((str(source), mount["mountPath"], bool(mount.get("readOnly"))))
        container.log = self.folder / f"{container.name}.log"
        log = open(container.log, "ab")  # noqa: SIM115
        container.process = subprocess.Popen(
            in_mount_namespace(
                argv, mounts, self.agent.keep, spec.get("workingDir") or "/", own_pids=True
            ),  # fmt: skip
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        container.started = now()
        container.waiting = None
        return True


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion; ``$$(VAR)`` escapes it."""

    def replace(match: re.Match) -> str:
        if match.group(0).startswith("$$"):
            return match.group(0)[1:]
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


def resource_value(pod: Obj, ref: Obj) -> str:
    for container in pod["spec"]["containers"]:
        if container["name"] == ref.get("containerName", container["name"]):
            kind, _, resource = ref["resource"].partition(".")
            value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
            return str(value or "0")
    return "0"


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


class Agent:
    """Watches pods on this cluster's Nodes and keeps one PodRunner per pod."""

    def __init__(self, state: State):
        self.state = state
        self.api = state.api()
        self.root = state.path / "pods"
        self.root.mkdir(exist_ok=True)
        self.nodes = {shape.name for shape in NODES}
        self.images = Images([
            (r"(^|/)argoexec(:|@|$)", [state.bin_dir]),
            (r"(^|/)hybrid-quantum-executor(:|@|$)", [state.python_bin]),
        ])  # fmt: skip
        repo = str(Path(__file__).resolve().parents[2])
        self.keep = sorted({repo, sys.prefix, state.bin_dir, state.folder,
                            str(Path(state.python_bin).parent)})  # fmt: skip
        self.runners: dict[str, PodRunner] = {}
        #: Pods run to their end: a late event about one never starts it again.
        self.finished: set[str] = set()
        self.lock = threading.Lock()

    def new_api(self) -> KubeApi:
        return self.state.api()

    def forget(self, uid: str) -> None:
        with self.lock:
            self.runners.pop(uid, None)
            self.finished.add(uid)

    def handle(self, pod: Obj, deleted: bool = False) -> None:
        if pod["spec"].get("nodeName") not in self.nodes:
            return
        uid = pod["metadata"]["uid"]
        deleting = deleted or bool(pod["metadata"].get("deletionTimestamp"))
        with self.lock:
            runner = self.runners.get(uid)
            if runner is None and not deleted:
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed") or uid in self.finished:
                    if deleting:  # finished before: only the final delete is left
                        self._final_delete(pod)
                    return
                runner = PodRunner(self, pod)
                self.runners[uid] = runner
                runner.start()
        if runner is not None and deleting:
            runner.request_stop(0 if deleted else pod["metadata"].get("deletionGracePeriodSeconds"))

    def _final_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.api.call(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    def heartbeat_forever(self) -> None:
        api = self.new_api()
        while True:
            for shape in NODES:
                try:
                    heartbeat(api, shape)
                except Exception as exc:  # noqa: BLE001
                    print(f"heartbeat {shape.name}: {exc!r}", file=sys.stderr, flush=True)
            time.sleep(HEARTBEAT_SECONDS)

    def serve(self) -> None:
        threading.Thread(target=self.heartbeat_forever, daemon=True).start()
        while True:
            try:
                listing = self.api.call("GET", "/api/v1/pods") or {}
                for pod in listing.get("items") or []:
                    self.handle(pod)
                version = listing["metadata"]["resourceVersion"]
                for event in self.api.watch("/api/v1/pods", version):
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.handle(event["object"], deleted=event["type"] == "DELETED")
                    elif event["type"] == "ERROR":
                        break
            except Exception as exc:  # noqa: BLE001 (list again and resume)
                print(f"watch: {exc!r}", file=sys.stderr, flush=True)
                time.sleep(RETRY_SECONDS)

    def shutdown(self, *_: Any) -> None:
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            for container in runner.init_containers + runner.containers:
                if container.process is not None and container.process.poll() is None:
                    _signal_group(container.process.pid, signal.SIGKILL)
        os._exit(0)


def heartbeat(api: KubeApi, shape) -> None:
    stamp = now()
    conditions = [
        ("Ready", "True", "KubeletReady", "node agent is posting ready status"),
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
    ]
    status = {
        "capacity": shape.capacity, "allocatable": shape.capacity,
        "conditions": [{"type": t, "status": s, "reason": r, "message": m,
                        "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                       for t, s, r, m in conditions],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": shape.name}],
        "nodeInfo": {"kubeletVersion": "node-agent", "operatingSystem": "linux",
                     "architecture": "amd64", "containerRuntimeVersion": "node-agent://processes",
                     "kernelVersion": os.uname().release, "osImage": "local processes",
                     "kubeProxyVersion": "", "machineID": shape.name, "systemUUID": shape.name,
                     "bootID": shape.name},
    }  # fmt: skip
    api.patch_merge(f"/api/v1/nodes/{shape.name}/status", {"status": status})
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": shape.name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": shape.name, "leaseDurationSeconds": 40,
                      "renewTime": datetime.datetime.now(datetime.timezone.utc)
                      .strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}  # fmt: skip
    api.apply(lease)


def main() -> None:
    parser = argparse.ArgumentParser(description="node agent (kubelet stand-in)")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    state = State.load(args.state)
    if state is None:
        sys.exit(f"no control plane state in {args.state}")
    agent = Agent(state)
    signal.signal(signal.SIGTERM, agent.shutdown)
    print(json.dumps({"nodes": sorted(agent.nodes), "keep": agent.keep}), flush=True)
    agent.serve()


if __name__ == "__main__":
    main()
