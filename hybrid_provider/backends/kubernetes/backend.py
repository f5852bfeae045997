"""KubernetesBackend: one Argo Workflow per run, created through the Kubernetes API.

The seam's promises, on a cluster:
  * ``submit`` is get-or-create: the workflow's name is deterministic, so a retried or
    restarted task finds the workflow it created before (also when two tries race and the
    API server answers 409 AlreadyExists) and never creates a second one. A workflow of that
    name made from another spec is refused rather than silently reused.
  * ``status`` reads the workflow (nodes, also when Argo compressed them), its pods (label
    ``workflows.argoproj.io/workflow``) and their Kueue Workloads (label
    ``kueue.x-k8s.io/job-uid``), and queue positions from Kueue's visibility API.
  * ``stop`` patches ``spec.shutdown``; finished batches keep their results in the store.
  * ``astatus`` / ``astop`` do the same without blocking, for the trigger.

Configuration comes from the ``hybrid_quantum`` connection's extras: ``kubernetes_conn_id``,
``namespace``, ``argo_ui_url`` and every field of ``KubernetesOptions`` (image, queues,
resources, retry, ...).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from hybrid_provider.backends.kubernetes.compile import (
    SPEC_HASH_ANNOTATION,
    KubernetesOptions,
    compile_workflow,
    movable_of,
    moves_configmap,
    spec_hash,
)
from hybrid_provider.backends.kubernetes.replace import replace_waiting
from hybrid_provider.backends.kubernetes.status import (
    build_status,
    pending_queues,
    positions_by_workload,
    recorded_moves,
)
from hybrid_provider.backends.kubernetes.telemetry import kueue_snapshot, read_queues
from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import WorkflowStatus
from hybrid_provider.constants import ARGO_WORKFLOW_LABEL, KUEUE_JOB_UID_LABEL
from hybrid_provider.core.errors import BackendError, InputError, invalid_fields

if TYPE_CHECKING:
    from hybrid_provider.hooks.kubernetes import Call, KubernetesCalls
    from hybrid_provider.placement.telemetry import TelemetrySnapshot

DEFAULT_CONN_ID = "kubernetes_default"
FAILED_PHASES = ("Failed", "Error")
#: How long a replacing submit waits for the failed workflow and its pods to be deleted.
REPLACE_TIMEOUT_S = 120.0
REPLACE_POLL_S = 1.0


def argo_ui_link(base: str | None, namespace: str, name: str) -> str | None:
    return f"{base.rstrip('/')}/workflows/{namespace}/{name}" if base else None


def _configured_ui_url() -> str | None:
    try:
        from airflow.sdk import conf

        return conf.get("hybrid_quantum", "argo_ui_url", fallback=None) or None
    except Exception:  # no Airflow configuration here (CLI use)
        return None


class Surroundings(NamedTuple):
    """What the status of a workflow is read from besides the workflow itself."""

    pods: list[dict[str, Any]]
    workloads: list[dict[str, Any]]
    positions: dict[str, Any]
    events: list[dict[str, Any]]
    #: The moves ConfigMap of a workflow whose batches may move (None: none moved yet).
    moves: dict[str, Any] | None


class KubernetesBackend:
    """Batches as one Argo Workflow, each batch a pod that Kueue admits against its flavor's
    quota; the status is read from the workflow, its pods, their Workloads and Kueue's events.

    Both hooks (blocking for operators and sensors, async for the trigger) hold the same
    conversations (``hooks.kubernetes.KubernetesCalls``), so both read the same status.
    """

    name = "kubernetes"

    def __init__(
        self,
        store_uri: str | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        argo_ui_url: str | None = None,
        **options: Any,
    ) -> None:
        self.store_uri = store_uri
        self.kubernetes_conn_id = kubernetes_conn_id or DEFAULT_CONN_ID
        self._namespace = namespace
        self.argo_ui_url = argo_ui_url or _configured_ui_url()
        # Connection form fields left empty arrive as None or "": use the defaults for those.
        self._raw_options = {k: v for k, v in options.items() if v not in (None, "")}
        try:
            KubernetesOptions(**self._raw_options)  # fail early on a misspelt extra
        except ValidationError as exc:
            raise invalid_fields(
                "kubernetes backend options in the hybrid_quantum connection's extras",
                exc,
                "the fields and their types are listed in docs/kubernetes.md",
            ) from None
        self._hook = None

    # --- configuration ---------------------------------------------------------------------
    @property
    def hook(self):
        if self._hook is None:
            from hybrid_provider.hooks.kubernetes import ArgoKueueHook

            self._hook = ArgoKueueHook(kubernetes_conn_id=self.kubernetes_conn_id)
        return self._hook

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            self._namespace = self.hook.get_namespace() or "default"
        return self._namespace

    @property
    def options(self) -> KubernetesOptions:
        return KubernetesOptions(**{**self._raw_options, "namespace": self.namespace})

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (namespace resolved), for the trigger."""
        return {
            "store_uri": self.store_uri,
            "kubernetes_conn_id": self.kubernetes_conn_id,
            "namespace": self.namespace,
            "argo_ui_url": self.argo_ui_url,
            **self._raw_options,
        }

    def compile(self, spec: WorkflowSpec) -> dict[str, Any]:
        return compile_workflow(spec, self.options)

    # --- the seam --------------------------------------------------------------------------
    def submit(self, spec: WorkflowSpec) -> WorkflowStatus:
        from hybrid_provider.hooks.kubernetes import KubernetesApiError

        body = self.compile(spec)
        existing = self.hook.get_workflow(spec.name, self.namespace)
        if existing is None:
            self._check_queues(spec)
            try:
                existing = self.hook.create_workflow(body, self.namespace)
            except KubernetesApiError as exc:
                if exc.status != 409:
                    raise
                existing = self.hook.get_workflow(spec.name, self.namespace)
                if existing is None:
                    raise
        else:
            self.hook.log.info("Workflow %s exists: reattaching", spec.name)
        found = (existing["metadata"].get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
        if found != spec_hash(spec):
            raise BackendError(
                f"workflow {spec.name} already exists in namespace {self.namespace} with another "
                "spec; stop or delete it and choose another name, or resubmit the same job and "
                "options"
            )
        if (existing.get("status") or {}).get("phase") in FAILED_PHASES:
            return self._replace(spec.name, body)
        return self._status_of(existing)

    def _replace(self, name: str, body: dict[str, Any]) -> WorkflowStatus:
        """A new try after a failed or stopped run: a fresh workflow under the same name.

        The old workflow is deleted in the foreground and the new one created only once it and
        its pods are gone: Argo names pods deterministically, and a new workflow created while
        the old pods still exist would adopt them. Batches whose results are already in the
        store finish at once (the executor skips them), so only what failed or never ran costs
        time again.
        """
        from hybrid_provider.hooks.kubernetes import KubernetesApiError

        self.hook.log.info("Workflow %s failed or was stopped: replacing it for this try", name)
        self.hook.delete_workflow(name, self.namespace)
        if not self._wait_until_gone(name):
            raise BackendError(
                f"the failed workflow {name} or its pods are still being deleted after "
                f"{REPLACE_TIMEOUT_S:.0f} s (a pod held by a finalizer, e.g. Kueue's "
                "kueue.x-k8s.io/managed, shows it in `kubectl get pods`); clear the task to "
                "submit again once they are gone"
            )
        try:
            return self._status_of(self.hook.create_workflow(body, self.namespace))
        except KubernetesApiError as exc:
            if exc.status != 409:
                raise
            raise BackendError(
                f"workflow {name} was created again by someone else while it was replaced; "
                "the task's next retry reattaches to it"
            ) from exc

    def _wait_until_gone(self, name: str) -> bool:
        deadline = time.monotonic() + REPLACE_TIMEOUT_S
        selector = f"{ARGO_WORKFLOW_LABEL}={name}"
        while time.monotonic() < deadline:
            if self.hook.get_workflow(name, self.namespace) is None and not self.hook.list_pods(
                self.namespace, selector
            ):
                return True
            time.sleep(REPLACE_POLL_S)
        return False

    def _check_queues(self, spec: WorkflowSpec) -> None:
        """Every flavor's LocalQueue exists, or the submit fails at once: a pod sent to a
        missing queue would wait for ever. A queue an admin stopped is a state, not an error:
        it is only logged. Without the right to read LocalQueues, nothing is checked."""
        from hybrid_provider.hooks.kubernetes import KubernetesApiError

        options = self.options
        for flavor in spec.flavors:
            queue = options.queue_for(spec, flavor)
            try:
                found = self.hook.get_local_queue(queue, self.namespace)
            except KubernetesApiError as exc:
                if exc.status != 403:
                    raise
                self.hook.log.warning("Cannot read LocalQueue %s (%s): not checked", queue, exc)
                continue
            if found is None:
                raise InputError(
                    f"Kueue LocalQueue '{queue}' (for {flavor} batches) does not exist in "
                    f"namespace {self.namespace}, or Kueue is not installed: install the "
                    "hybrid-quantum chart with this namespace in tenantNamespaces, or name an "
                    "existing LocalQueue (the operator's queue_name, the connection's "
                    "local_queues)"
                )
            active = next(
                (c for c in (found.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Active"), None)  # fmt: skip
            if active is not None and active.get("status") == "False":
                self.hook.log.warning(
                    "Kueue LocalQueue %s is not active (%s): batches wait until it is",
                    queue, active.get("message") or active.get("reason"),
                )  # fmt: skip

    def status(self, workflow_name: str) -> WorkflowStatus:
        workflow = self.hook.get_workflow(workflow_name, self.namespace)
        if workflow is None:
            raise self._missing(workflow_name)
        return self._status_of(workflow)

    def stop(self, workflow_name: str) -> None:
        self.hook.stop_workflow(workflow_name, self.namespace)

    def logs(self, workflow_name: str, tail: int = 200) -> str:
        """The main containers' last lines, per pod still present (podGC removes succeeded
        pods; archived workflows' logs need the Argo Server, which this backend does not use)."""
        pods = self.hook.list_pods(self.namespace, f"{ARGO_WORKFLOW_LABEL}={workflow_name}")
        parts = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            try:
                text = self.hook.pod_log(name, self.namespace, tail=tail)
            except BackendError as exc:
                text = f"(no log: {exc})"
            parts.append(f"==> {name} <==\n{text.rstrip()}")
        return "\n".join(parts)

    def ui_url(self, workflow_name: str) -> str | None:
        return argo_ui_link(self.argo_ui_url, self.namespace, workflow_name)

    def telemetry(self) -> TelemetrySnapshot:
        """Each flavor's LocalQueue, ClusterQueue quota and usage, and pending workloads."""
        options = self.options
        return kueue_snapshot(options, self.hook.drive(read_queues(self.hook, options,
                                                                   self.namespace)))  # fmt: skip

    # --- async twins, for the trigger ------------------------------------------------------
    def async_hook(self):
        from hybrid_provider.hooks.kubernetes import AsyncArgoKueueHook

        return AsyncArgoKueueHook(kubernetes_conn_id=self.kubernetes_conn_id)

    async def astatus(self, workflow_name: str, hook=None) -> WorkflowStatus:
        hook = hook or self.async_hook()
        workflow = await hook.get_workflow(workflow_name, self._namespace or "default")
        if workflow is None:
            raise self._missing(workflow_name)
        return await hook.drive(self._observe(hook, workflow))

    async def astop(self, workflow_name: str, hook=None) -> None:
        hook = hook or self.async_hook()
        await hook.stop_workflow(workflow_name, self._namespace or "default")

    # --- helpers ---------------------------------------------------------------------------
    def _status_of(self, workflow: dict[str, Any]) -> WorkflowStatus:
        return self.hook.drive(self._observe(self.hook, workflow))

    def _observe(self, hook: KubernetesCalls, workflow: dict[str, Any]) -> Call[WorkflowStatus]:
        """The status, as one conversation either hook holds. For a workflow whose batches may
        move (``flavor="auto"``), batches that waited long enough are moved first
        (``replace.py``), and the status is read again if any was."""
        movable = movable_of(workflow)
        around = yield from self._around(hook, workflow, movable is not None)
        status = self._status(workflow, around)
        stopping = bool((workflow.get("spec") or {}).get("shutdown"))
        if movable is None or status.phase.finished or stopping:
            return status
        namespace = workflow["metadata"]["namespace"]
        options = KubernetesOptions(**{**self._raw_options, "namespace": namespace})
        moved = yield from replace_waiting(
            hook, workflow, status, around.pods, around.moves, options, movable
        )
        if not moved:
            return status
        return self._status(workflow, (yield from self._around(hook, workflow, True)))

    def _around(
        self, hook: KubernetesCalls, workflow: dict[str, Any], movable: bool
    ) -> Call[Surroundings]:
        """What the status needs besides the workflow, as one conversation either hook holds:
        its pods, their Workloads, queue positions and the namespace's relevant events, and
        the moves ConfigMap of a workflow whose batches may move."""
        namespace = self._namespace or "default"
        selector = f"{ARGO_WORKFLOW_LABEL}={workflow['metadata']['name']}"
        from hybrid_provider.hooks.kubernetes import KubernetesCalls as calls

        pods = yield from calls.list_pods.function(hook, namespace, selector)
        workloads = []
        if pods:
            uids = _uid_selector(pods)
            workloads = yield from calls.list_workloads.function(hook, namespace, uids)
        pending = []
        for queue in sorted(pending_queues(pods, workloads)):
            found = yield from calls.pending_workloads.function(hook, namespace, queue)
            if found:
                pending.append(found)
        events = yield from calls.list_events.function(hook, namespace)
        moves = None
        if movable:
            name = moves_configmap(workflow["metadata"]["name"])
            moves = yield from calls.get_configmap.function(hook, name, namespace)
        return Surroundings(pods, workloads, positions_by_workload(pending), events, moves)

    def _status(self, workflow: dict[str, Any], around: Surroundings) -> WorkflowStatus:
        name = workflow["metadata"]["name"]
        return build_status(
            workflow, around.pods, around.workloads, around.positions, self.ui_url(name),
            around.events, recorded_moves(around.moves),
        )  # fmt: skip

    def _missing(self, workflow_name: str) -> BackendError:
        return BackendError(
            f"no Argo workflow named {workflow_name} in namespace {self.namespace}; was it "
            "submitted through the same connection, or deleted by its ttlStrategy?"
        )


def _uid_selector(pods: list[dict[str, Any]]) -> str:
    """``kueue.x-k8s.io/job-uid in (uid, ...)``: the Workloads of exactly these pods."""
    uids = sorted(p["metadata"]["uid"] for p in pods if p["metadata"].get("uid"))
    return f"{KUEUE_JOB_UID_LABEL} in ({','.join(uids)})"
