"""A real Kubernetes control plane with Kueue and Argo Workflows, as processes on loopback.

    python tests/controlplane/cluster.py up   [--state DIR]   # make cluster
    python tests/controlplane/cluster.py down [--state DIR]   # make cluster-down

What runs (all built from the pinned upstream modules in ``engines.PINS``):
  * etcd, kube-apiserver (RBAC, admission plugins, service-account token signing, the
    aggregation layer), kube-controller-manager (garbage collector, token controller, ...),
    kube-scheduler;
  * Kueue's controller manager with the pod integration; its admission and conversion webhooks
    are registered by URL (``https://127.0.0.1:PORT``) with a CA of our own, and its visibility
    API is registered as an aggregated APIService behind an ExternalName Service;
  * Argo's workflow-controller (argoexec runs inside the pods);
  * the node agent (``node_agent.py``), which stands in for the kubelet: the one part that needs
    a container runtime. It runs every pod bound to its Nodes as local processes.

Everything lives under the state folder (default ``<repo>/.cluster``): certificates, etcd's
data, logs, the pods' folders and ``kubeconfig``. ``down`` stops every process it started,
the pods' processes included, and leaves nothing running.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import engines
import yaml
from kubeapi import ApiError, KubeApi
from mounts import in_mount_namespace
from pki import ClusterPKI, make_pki

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE = REPO / ".cluster"
#: Every process the control plane starts carries this variable, so ``down`` finds strays.
MARKER = "HYBRID_CONTROLPLANE"
ARGO_NAMESPACE = "argo"
#: Where Kueue reads its metrics serving certificate when it does not make its own.
KUEUE_METRICS_CERTS = "/etc/kueue/metrics/certs"
#: Where Kueue's visibility server reads its serving certificate (when it makes none).
KUEUE_VISIBILITY_CERTS = "/visibility"
KUEUE_NAMESPACE = "kueue-system"
EXECUTOR_IMAGE = "argoexec:" + engines.PINS[engines.ARGO]
#: Kueue CRDs that upstream serves through its conversion webhook (config/components/crd).
CONVERTED_CRDS = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
#: API groups whose Kueue webhooks we register: pods, jobs and Kueue's own objects.
WEBHOOK_GROUPS = {"", "batch", "kueue.x-k8s.io"}
#: Namespaces Kueue leaves alone (as upstream's kustomization does, plus Argo's).
UNMANAGED_NAMESPACES = ["kube-system", KUEUE_NAMESPACE, ARGO_NAMESPACE]


@dataclass(frozen=True)
class NodeShape:
    """A Node: its name, labels, capacity and taints, matching the chart's flavors."""

    name: str
    labels: dict[str, str]
    capacity: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)


NODES = (
    NodeShape("cpu-node-0", {"hybrid-quantum.io/flavor": "cpu"},
              {"cpu": "8", "memory": "32Gi", "pods": "110"}),
    NodeShape("gpu-node-0", {"hybrid-quantum.io/flavor": "gpu"},
              {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "4"},
              [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),
    NodeShape("qpu-node-0", {"hybrid-quantum.io/flavor": "qpu", "hybrid-quantum.io/qpu": "true"},
              {"cpu": "4", "memory": "16Gi", "pods": "110", "quantum.example.com/qpu": "1"},
              [{"key": "hybrid-quantum.io/qpu", "effect": "NoSchedule"}]),
)  # fmt: skip


@dataclass
class State:
    """What ``up`` started, written to ``state.json`` for ``down`` and the node agent."""

    folder: str
    server: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    bin_dir: str = ""
    python_bin: str = ""

    @property
    def path(self) -> Path:
        return Path(self.folder)

    @property
    def kubeconfig(self) -> Path:
        return self.path / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.path / "pki"

    def save(self) -> None:
        (self.path / "state.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> State | None:
        try:
            return cls(**json.loads((folder / "state.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def api(self) -> KubeApi:
        pki = self.pki
        return KubeApi(self.server, str(pki / "ca.crt"), str(pki / "admin.crt"),
                       str(pki / "admin.key"))  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: ClusterPKI, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hq", "cluster": {
            "server": server, "certificate-authority-data": _b64(pki.ca.cert)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": _b64(pki.admin.cert),
            "client-key-data": _b64(pki.admin.key)}}],
        "contexts": [{"name": "hq", "context": {
            "cluster": "hq", "user": "admin", "namespace": namespace}}],
        "current-context": "hq",
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class Launcher:
    """Starts the control plane's processes, each in its own session, logging to logs/."""

    def __init__(self, state: State):
        self.state = state
        self.logs = state.path / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              mounts: list[tuple[str, str, bool]] | None = None) -> None:  # fmt: skip
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            in_mount_namespace(argv, mounts) if mounts else argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), MARKER: self.state.folder},
            start_new_session=True,
        )
        log.close()
        self.state.pids[name] = process.pid
        self.state.save()

    def alive(self, name: str) -> bool:
        pid = self.state.pids.get(name)
        if pid is None:
            return False
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0 if _exists(pid) else pid
        return waited == 0

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for(what: str, check, timeout: float, launcher: Launcher | None = None,
             process: str | None = None, interval: float = 0.25) -> Any:  # fmt: skip
    """Poll ``check`` until it returns a truthy value; fail with the process's log if it died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if launcher and process and not launcher.alive(process):
            raise RuntimeError(f"{process} exited while waiting for {what}:\n"
                               f"{launcher.tail(process)}")  # fmt: skip
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 (not up yet: keep polling)
            last = exc
        time.sleep(interval)
    tail = launcher.tail(process) if launcher and process else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} ({last})\n{tail}")


# --- the parts ---------------------------------------------------------------------------


def start_etcd(launcher: Launcher, bins: Path) -> str:
    state = launcher.state
    client, peer = state.ports["etcd"], state.ports["etcd-peer"]
    url = f"http://127.0.0.1:{client}"
    launcher.start("etcd", [
        str(bins / "etcd"), "--name=hq", f"--data-dir={state.path / 'etcd'}",
        f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=hq=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync", "--log-level=warn",
    ])  # fmt: skip
    return url


def start_apiserver(launcher: Launcher, bins: Path, pki: ClusterPKI, etcd: str) -> None:
    state = launcher.state
    launcher.start("kube-apiserver", [
        str(bins / "kube-apiserver"),
        f"--etcd-servers={etcd}",
        "--bind-address=127.0.0.1", f"--secure-port={state.ports['apiserver']}",
        "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki.service_account_public}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--kubelet-client-certificate={pki.kubelet_client.cert}",
        f"--kubelet-client-key={pki.kubelet_client.key}",
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        "--profiling=false", "-v=1",
    ])  # fmt: skip


def start_controllers(launcher: Launcher, bins: Path, pki: ClusterPKI) -> None:
    state = launcher.state
    kubeconfig = str(state.kubeconfig)
    launcher.start("kube-controller-manager", [
        str(bins / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={state.ports['controller-manager']}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}", "--leader-elect=false",
        "--controllers=*,-nodeipam",
        "--concurrent-gc-syncs=5", "-v=1",
    ])  # fmt: skip
    launcher.start("kube-scheduler", [
        str(bins / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={state.ports['scheduler']}",
        "--leader-elect=false", "-v=1",
    ])  # fmt: skip


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return [doc for doc in yaml.load_all(handle, Loader=loader) if doc]


def install_crds(api: KubeApi, webhook_url: str, ca_bundle: str) -> list[str]:
    names = []
    for path in [*engines.kueue_crds(), *engines.argo_crds()]:
        for crd in _load_yaml_docs(path):
            plural = crd["spec"]["names"]["plural"]
            if crd["spec"]["group"] == "kueue.x-k8s.io" and plural in CONVERTED_CRDS:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": {"url": f"{webhook_url}/convert", "caBundle": ca_bundle},
                    "conversionReviewVersions": ["v1"]}}  # fmt: skip
            api.apply(crd)
            names.append(crd["metadata"]["name"])
    return names


def crds_established(api: KubeApi, names: list[str]) -> bool:
    for name in names:
        crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
    return True


def kueue_webhooks(webhook_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """Upstream's webhook configurations, reached by URL, for pods, jobs and Kueue objects."""
    manifests = engines.module_dir(engines.KUEUE) / "config/components/webhook/manifests.yaml"
    selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                      "values": UNMANAGED_NAMESPACES}]}  # fmt: skip
    configs = []
    for config in _load_yaml_docs(manifests):
        kept = []
        for hook in config["webhooks"]:
            groups = {g for rule in hook.get("rules", []) for g in rule.get("apiGroups", [])}
            if not groups <= WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": webhook_url + path, "caBundle": ca_bundle}
            if groups & {"", "batch"}:
                hook["namespaceSelector"] = selector
            kept.append(hook)
        config["metadata"]["name"] = "kueue-" + config["metadata"]["name"]
        configs.append({**config, "webhooks": kept})
    return configs


def kueue_config(state: State, pki: ClusterPKI) -> Path:
    certs = state.pki / "kueue-webhook"
    certs.mkdir(exist_ok=True)
    shutil.copy(pki.webhook.cert, certs / "tls.crt")
    shutil.copy(pki.webhook.key, certs / "tls.key")
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{state.ports['kueue-health']}"},
        "metrics": {"bindAddress": f"127.0.0.1:{state.ports['kueue-metrics']}"},
        "webhook": {"port": state.ports["kueue-webhook"], "host": "127.0.0.1",
                    "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "visibilityServer": {"bindAddress": "127.0.0.1",
                             "bindPort": state.ports["kueue-visibility"]},
        "integrations": {"frameworks": ["batch/job", "pod"]},
        "managedJobsNamespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
             "values": UNMANAGED_NAMESPACES}]},
    }  # fmt: skip
    path = state.path / "kueue-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def visibility_objects(port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """Kueue's visibility API as an aggregated API; an ExternalName Service reaches loopback."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kueue-visibility-server", "namespace": KUEUE_NAMESPACE},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    }
    api_services = [
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": f"{version}.visibility.kueue.x-k8s.io"},
         "spec": {"group": "visibility.kueue.x-k8s.io", "version": version,
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "caBundle": ca_bundle,
                  "service": {"name": "kueue-visibility-server",
                              "namespace": KUEUE_NAMESPACE, "port": port}}}
        for version in ("v1beta2", "v1beta1")
    ]  # fmt: skip
    return [service, *api_services]


def argo_configmap(state: State) -> dict[str, Any]:
    metrics = {"enabled": True, "secure": False, "port": state.ports["argo-metrics"],
               "path": "/metrics"}  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "workflow-controller-configmap", "namespace": ARGO_NAMESPACE},
            "data": {"metricsConfig": yaml.safe_dump(metrics),
                     "telemetryConfig": yaml.safe_dump({"enabled": False})}}  # fmt: skip


def node_object(shape: NodeShape) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": shape.name, "labels": {
                **shape.labels, "kubernetes.io/hostname": shape.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64"}},
            "spec": {"taints": shape.taints} if shape.taints else {}}  # fmt: skip


def nodes_ready(api: KubeApi) -> bool:
    nodes = (api.get("/api/v1/nodes") or {}).get("items") or []
    ready = [n for n in nodes for c in (n.get("status") or {}).get("conditions") or []
             if c["type"] == "Ready" and c["status"] == "True"]  # fmt: skip
    return len(ready) == len(NODES)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- up / down ---------------------------------------------------------------------------


PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kueue-webhook",
         "kueue-visibility", "kueue-metrics", "kueue-health", "argo-metrics")  # fmt: skip


def up(folder: Path = DEFAULT_STATE, log=print) -> State:
    """Start everything and wait until it is ready; an earlier cluster there is stopped first."""
    down(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        return _start(folder, log)
    except BaseException:
        down(folder)  # nothing half-started is left running
        raise


def _start(folder: Path, log) -> State:
    started = time.monotonic()
    bins = engines.ensure_binaries(log)
    state = State(folder=str(folder.resolve()), bin_dir=str(bins),
                  python_bin=str(Path(sys.executable).parent),
                  ports={name: free_port() for name in PORTS})  # fmt: skip
    state.server = f"https://127.0.0.1:{state.ports['apiserver']}"
    pki = make_pki(state.pki)
    launcher = Launcher(state)
    start_apiserver(launcher, bins, pki, start_etcd(launcher, bins))
    write_kubeconfig(state.kubeconfig, state.server, pki)
    api = state.api()
    wait_for("the API server", api.healthy, 60, launcher, "kube-apiserver")
    start_controllers(launcher, bins, pki)
    for namespace in (KUEUE_NAMESPACE, ARGO_NAMESPACE):
        api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    webhook_url = f"https://127.0.0.1:{state.ports['kueue-webhook']}"
    ca_bundle = _b64(pki.ca.cert)
    crds = install_crds(api, webhook_url, ca_bundle)
    wait_for("the CRDs", lambda: crds_established(api, crds), 60)
    launcher.start(
        "kueue",
        [
            str(bins / "kueue"),
            f"--config={kueue_config(state, pki)}",
            "--zap-log-level=info",
            f"--kubeconfig={state.kubeconfig}",
        ],  # the visibility server reads the flag  # fmt: skip
        {"KUBECONFIG": str(state.kubeconfig)},
        mounts=[
            (str(state.pki / "kueue-webhook"), KUEUE_METRICS_CERTS, True),
            (str(state.pki / "kueue-webhook"), KUEUE_VISIBILITY_CERTS, True),
        ],
    )
    argo_kubeconfig = write_kubeconfig(state.path / "argo.kubeconfig", state.server, pki,
                                       ARGO_NAMESPACE)  # fmt: skip
    api.apply(argo_configmap(state))
    launcher.start("workflow-controller", [
        str(bins / "workflow-controller"), "--configmap=workflow-controller-configmap",
        f"--executor-image={EXECUTOR_IMAGE}", "--executor-image-pull-policy=IfNotPresent",
        f"--kubeconfig={argo_kubeconfig}", "--loglevel=info"],
        {"LEADER_ELECTION_DISABLE": "true", "DEFAULT_REQUEUE_TIME": "1s",
         "KUBECONFIG": str(argo_kubeconfig)})  # fmt: skip
    for shape in NODES:
        api.apply(node_object(shape))
    launcher.start("node-agent", [sys.executable, str(Path(__file__).with_name("node_agent.py")),
                                  "--state", state.folder])  # fmt: skip
    wait_for("Kueue's webhooks", lambda: _port_open(state.ports["kueue-webhook"]), 120,
             launcher, "kueue")  # fmt: skip
    for config in kueue_webhooks(webhook_url, ca_bundle):
        api.apply(config)
    for obj in visibility_objects(state.ports["kueue-visibility"], ca_bundle):
        api.apply(obj)
    wait_for("Ready nodes", lambda: nodes_ready(api), 60, launcher, "node-agent")
    wait_for("the default ServiceAccount",
             lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default"), 60,
             launcher, "kube-controller-manager")  # fmt: skip
    wait_for(
        "Kueue's visibility API",
        lambda: api.get("/apis/visibility.kueue.x-k8s.io/v1beta2"),
        60,
        launcher,
        "kueue",
    )
    wait_for("Argo's controller", lambda: _port_open(state.ports["argo-metrics"]), 60,
             launcher, "workflow-controller")  # fmt: skip
    log(f"control plane ready in {time.monotonic() - started:.1f} s: "
        f"KUBECONFIG={state.kubeconfig}")  # fmt: skip
    return state


def _marked_processes(folder: str) -> list[int]:
    """Processes whose environment carries this cluster's marker (pods' processes included)."""
    needle = f"{MARKER}={folder}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def down(folder: Path = DEFAULT_STATE, grace: float = 10.0) -> int:
    """Stop every process of the cluster in ``folder``; return how many were running.

    Only processes that carry this cluster's marker are signalled (a PID in an old
    ``state.json`` may belong to someone else by now)."""
    state = State.load(folder)
    marker = state.folder if state else str(folder.resolve())
    pids = set(_marked_processes(marker))
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        _reap(pids)
        time.sleep(0.1)
    for pid in _marked_processes(marker):
        _signal(pid, signal.SIGKILL)
    _reap(pids)
    _unmount_under(Path(marker))
    return len(pids)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _reap(pids: set[int]) -> None:
    """Collect those of ``pids`` that are our exited children (no zombies left behind)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _unmount_under(folder: Path) -> None:
    """Pods' bind mounts live in private mount namespaces; this only guards against leaks."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    for line in mounts:
        target = line.split()[1]
        if target.startswith(str(folder) + "/"):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "build"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            print(engines.ensure_binaries())
        elif args.action == "up":
            up(args.state)
        else:
            print(f"stopped {down(args.state)} processes")
    except (engines.EngineUnavailable, RuntimeError, TimeoutError, ApiError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
