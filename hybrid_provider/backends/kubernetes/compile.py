"""Compile a WorkflowSpec into one Argo Workflow (a plain dict, ready for the Kubernetes API).

Shape: an entry DAG ``main`` with one task per flavor in use (``batches-cpu``, ...), each
fanning out over that flavor's batch indices with ``withItems``; one container template per
flavor (``run-batch-cpu``, ...) that runs ``hybrid-quantum run-batch MANIFEST --batch N``.
The object therefore grows with the number of *batches*, never with the number of
subexperiments. Built with Hera (``Workflow.to_dict()``); no Airflow imports here, so the CLI
(``hybrid-quantum workflow``) and the operator print and submit the very same object.

The pod template mirrors the chart's ``hybrid-quantum-batch`` WorkflowTemplate
(charts/hybrid-quantum/templates/workflowtemplate.yaml): same command, service account, store
Secret reference, security contexts and scratch volume; a test compares the two.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from hera.workflows import DAG, Container, Parameter, Task, Workflow
from hera.workflows import models as m
from hera.workflows.metrics import Counter, Histogram, Label
from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.backends.spec import Replacement, WorkflowSpec, label_value
from hybrid_provider.constants import (
    BATCH_LABEL,
    DEFAULT_EXECUTOR_GPU_IMAGE,
    DEFAULT_EXECUTOR_IMAGE,
    DEFAULT_LOCAL_QUEUES,
    DEFAULT_QPU_RESOURCE,
    DURATION_BUCKETS,
    EXECUTOR_SERVICE_ACCOUNT,
    FLAVOR_LABEL,
    GPU_RESOURCE,
    JOB_LABEL,
    KUEUE_PRIORITY_CLASS_LABEL,
    KUEUE_QUEUE_NAME_LABEL,
    LABEL_PREFIX,
    METRICS_PREFIX,
    STORE_SECRET,
)
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute import runtime_options as ibm_runtime
from hybrid_provider.core.provenance import EXECUTOR_ENVIRONMENT

API_VERSION = "argoproj.io/v1alpha1"
ENTRYPOINT = "main"
#: Exit status of ``hybrid-quantum`` on bad input; such a batch is never retried.
BAD_INPUT_EXIT_CODE = 2
SPEC_HASH_ANNOTATION = f"{LABEL_PREFIX}/spec-sha256"
MANIFEST_ANNOTATION = f"{LABEL_PREFIX}/manifest-uri"
#: The re-placement rule of a workflow whose batches may move (``flavor="auto"``), as JSON.
REPLACEMENT_ANNOTATION = f"{LABEL_PREFIX}/replacement"
#: The LocalQueue named for every batch of such a workflow (the operator's ``queue_name``).
QUEUE_ANNOTATION = f"{LABEL_PREFIX}/queue-name"
#: The one batch template of such a workflow, whose flavor is an input (``movable_shape``).
MOVABLE_TEMPLATE = "run-batch-movable"
#: Labels the chart's executor selector uses (hq.executorSelector), kept on every pod.
EXECUTOR_SELECTOR = {
    "app.kubernetes.io/name": "hybrid-quantum",
    "app.kubernetes.io/component": "executor",
}

#: Retry a batch whose pod was deleted (Kueue preemption, node loss), that hit an executor
#: or controller error, or whose main container failed with any status but bad input (2).
#: A batch that ran past its deadline is not retried: it would only run past it again.
RETRY_EXPRESSION = (
    "lastRetry.message matches 'pod deleted' || lastRetry.status == 'Error' || "
    f"(lastRetry.status == 'Failed' && asInt(lastRetry.exitCode) != {BAD_INPUT_EXIT_CODE} "
    "&& !(lastRetry.message matches 'deadline'))"
)

DEFAULT_RESOURCES: dict[str, dict[str, str | int]] = {
    "cpu": {"cpu": "1", "memory": "2Gi"},
    "gpu": {"cpu": "2", "memory": "8Gi", "gpu": 1},
    "qpu": {"cpu": "1", "memory": "2Gi", "qpu": 1},
}


class KubernetesOptions(BaseModel):
    """How batches run on the cluster. Every field can be set in the ``hybrid_quantum``
    connection's extras (kubernetes backend); the defaults match the Helm chart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = "default"
    image: str = DEFAULT_EXECUTOR_IMAGE
    gpu_image: str = DEFAULT_EXECUTOR_GPU_IMAGE
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account: str = EXECUTOR_SERVICE_ACCOUNT
    local_queues: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LOCAL_QUEUES))
    #: Per flavor: cpu, memory, and the count of gpu / qpu (integers, request = limit).
    resources: dict[str, dict[str, str | int]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_RESOURCES.items()}
    )
    gpu_resource: str = GPU_RESOURCE
    qpu_resource: str = DEFAULT_QPU_RESOURCE
    #: Requests of Argo's init and wait containers, which Kueue counts in each pod's Workload.
    executor_resources: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "64Mi"}
    )
    store_secret: str = STORE_SECRET
    store_env_prefix: str = "HYBRID_QUANTUM_STORE_"
    store_secret_optional: bool = False
    #: Run time of one batch attempt once its pod started (template activeDeadlineSeconds).
    active_deadline_seconds: int | None = 3600
    retry_limit: int = 5
    #: First wait before a retry; each later wait doubles, up to ``retry_backoff_cap``.
    retry_backoff: str = "10s"
    #: Longest single wait between two attempts (Argo ``backoff.cap``).
    retry_backoff_cap: str = "10m"
    #: Optional limit on a batch's whole life from its first attempt (Argo
    #: ``backoff.maxDuration``; queue time counts, and it becomes every retried pod's deadline).
    #: Off by default: a preempted batch that waited long for quota must still be retried.
    retry_max_duration: str | None = None
    ttl_seconds_after_completion: int = 7 * 24 * 3600
    pod_gc_strategy: str = "OnPodSuccess"
    run_as_user: int = 10001
    run_as_group: int = 10001
    scratch_size_limit: str = "1Gi"
    extra_env: dict[str, str] = Field(default_factory=dict)
    #: Secret with the IBM Quantum account (keys token, channel, instance) for ibm-runtime
    #: samplers; read by reference, so the token is never in the workflow.
    ibm_runtime_secret: str = "hybrid-quantum-ibm-runtime"

    def queue_for(self, spec: WorkflowSpec, flavor: str) -> str:
        return self.queue_of(flavor, spec.queue_name)

    def queue_of(self, flavor: str, queue_name: str | None = None) -> str:
        """The LocalQueue of a flavor's batches: the one named for the run, else the flavor's."""
        return queue_name or self.local_queues.get(flavor) or DEFAULT_LOCAL_QUEUES[flavor]


def spec_hash(spec: WorkflowSpec) -> str:
    """Fingerprint of what was asked for; a re-submit with another spec is refused."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def template_name(flavor: str) -> str:
    return f"run-batch-{flavor}"


def task_name(flavor: str) -> str:
    return f"batches-{flavor}"


def mode_arguments(spec: WorkflowSpec) -> list[str]:
    """The execution options as ``run-batch`` flags (one token per option, like the chart)."""
    options = spec.execution
    mode = "--exact" if options.mode == "exact" else f"--shots={options.shots}"
    arguments = [mode, f"--seed={options.seed}", f"--device={options.device}",
                 f"--sampler={options.sampler}"]  # fmt: skip
    if options.shot_allocation != "uniform":  # only when asked: default workflows are unchanged
        arguments.append(f"--shot-allocation={options.shot_allocation}")
    if options.runtime is not None:
        arguments.append(f"--runtime-options={options.runtime.model_dump_json()}")
    return arguments


def _container_resources(flavor: str, options: KubernetesOptions) -> m.ResourceRequirements:
    wanted = {**DEFAULT_RESOURCES[flavor], **options.resources.get(flavor, {})}
    requests: dict[str, str] = {"cpu": str(wanted["cpu"]), "memory": str(wanted["memory"])}
    limits: dict[str, str] = {"memory": str(wanted["memory"])}
    for key, resource in (("gpu", options.gpu_resource), ("qpu", options.qpu_resource)):
        count = wanted.get(key)
        if count in (None, 0, "0"):
            continue
        if not str(count).isdigit():
            raise InputError(  # the value is not echoed: it comes from a connection
                f"resources.{flavor}.{key} in the connection's extras must be a whole number "
                f"of {key}s (e.g. 1)"
            )
        # Extended resources cannot be overcommitted: request and limit are the same integer.
        requests[resource] = limits[resource] = str(int(count))
    return m.ResourceRequirements(
        requests={k: m.Quantity(v) for k, v in requests.items()},
        limits={k: m.Quantity(v) for k, v in limits.items()},
    )


def _container_security_context() -> m.SecurityContext:
    return m.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=m.Capabilities(drop=["ALL"]),
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def _executor_patch(options: KubernetesOptions, main: dict[str, Any] | None = None) -> str:
    """Requests of Argo's own containers (Kueue counts them), as the chart sets them; with
    ``main``, the main container's part of the pod spec goes in the same patch."""
    sc = _container_security_context().model_dump(by_alias=True, exclude_none=True)
    res = {
        "requests": dict(options.executor_resources),
        "limits": {"memory": options.executor_resources["memory"]},
    }
    patch = {
        "initContainers": [{"name": "init", "resources": res, "securityContext": sc}],
        "containers": [
            *([{"name": "main", **main}] if main else []),
            {"name": "wait", "resources": res, "securityContext": sc},
        ],
    }
    return json.dumps(patch, sort_keys=True, separators=(",", ":"))


def _provenance_env(flavor: str, image: str) -> list[m.EnvVar]:
    """What a batch records about where it ran (see ``core.provenance.Executor``)."""
    names = EXECUTOR_ENVIRONMENT
    from_pod = {"pod": "metadata.name", "namespace": "metadata.namespace",
                "pod_uid": "metadata.uid", "node": "spec.nodeName"}  # fmt: skip
    return [
        m.EnvVar(name=names["workflow"], value="{{workflow.name}}"),
        m.EnvVar(name=names["flavor"], value=flavor),
        m.EnvVar(name=names["image"], value=image),
        *(
            m.EnvVar(
                name=names[field],
                value_from=m.EnvVarSource(field_ref=m.ObjectFieldSelector(field_path=path)),
            )
            for field, path in from_pod.items()
        ),
    ]


def _ibm_runtime_env(spec: WorkflowSpec, options: KubernetesOptions) -> list[m.EnvVar]:
    """The IBM Quantum account from its Secret, for a real device (fake ones need none)."""
    sampler = spec.execution.sampler
    if not ibm_runtime.is_runtime_sampler(sampler) or ibm_runtime.is_local(sampler):
        return []
    keys = {ibm_runtime.TOKEN_VARIABLE: ("token", False),
            ibm_runtime.CHANNEL_VARIABLE: ("channel", True),
            ibm_runtime.INSTANCE_VARIABLE: ("instance", True)}  # fmt: skip
    return [
        m.EnvVar(
            name=name,
            value_from=m.EnvVarSource(
                secret_key_ref=m.SecretKeySelector(
                    name=options.ibm_runtime_secret, key=key, optional=optional
                )
            ),
        )
        for name, (key, optional) in keys.items()
    ]


def batch_metrics(flavor: str) -> list[Counter | Histogram]:
    """Argo's custom metrics of a batch template, served by the workflow controller's own
    ``/metrics`` (as ``argo_workflows_<name>``) while the batch pods are long gone.

    Argo evaluates a template's metrics once for each attempt that is retried and once for
    the batch when its last attempt ends, so one ``1`` per evaluation counts attempts, by the
    status each ended with; the duration is observed once per batch that succeeded, from its
    first start to its success (retries and their backoff included). Labels stay bounded:
    flavor and status, never the workflow or the batch index.
    """
    return [
        Counter(
            name=f"{METRICS_PREFIX}_batch_attempts",
            help="Attempts of batch pods by flavor and the status they ended with",
            labels=[Label(key="flavor", value=flavor), Label(key="status", value="{{status}}")],
            value="1",
        ),
        Histogram(
            name=f"{METRICS_PREFIX}_batch_seconds",
            help="From a batch's first start to its success, retries included, by flavor",
            labels=[Label(key="flavor", value=flavor)],
            when="{{status}} == Succeeded",
            buckets=list(DURATION_BUCKETS),
            value="{{duration}}",
        ),
    ]


class PodShape(NamedTuple):
    """What differs between the batch pods of one flavor and another's, as a template states it:
    concrete values in a flavor's own template, input parameters in the movable one."""

    template: str
    flavor: str
    labels: dict[str, str]
    image: str
    resources: m.ResourceRequirements | None
    pod_spec_patch: str
    inputs: list[Parameter]


def image_of(flavor: str, options: KubernetesOptions) -> str:
    return options.gpu_image if flavor == "gpu" else options.image


def fixed_shape(flavor: str, options: KubernetesOptions, labels: dict[str, str]) -> PodShape:
    """One flavor's template: its resources on the container, Argo's containers patched."""
    return PodShape(
        template=template_name(flavor),
        flavor=flavor,
        labels=labels,
        image=image_of(flavor, options),
        resources=_container_resources(flavor, options),
        pod_spec_patch=_executor_patch(options),
        inputs=[],
    )


#: What the movable template takes besides the batch index: one value per ``PodShape`` field
#: that differs between flavors. Each comes from the workflow's moves ConfigMap when the batch
#: was moved, else from the flavor it was placed on (``flavor_values``).
MOVABLE_INPUTS = ("flavor", "queue", "image", "pod-spec-patch")


def movable_shape() -> PodShape:
    """The template of a workflow whose batches may move (re-placement): everything that
    depends on the flavor is an input, so a batch's pod recreated after a move is that
    flavor's pod."""
    value = {name: f"{{{{inputs.parameters.{name}}}}}" for name in MOVABLE_INPUTS}
    return PodShape(
        template=MOVABLE_TEMPLATE,
        flavor=value["flavor"],
        labels={KUEUE_QUEUE_NAME_LABEL: value["queue"]},
        image=value["image"],
        resources=None,
        pod_spec_patch=value["pod-spec-patch"],
        inputs=[Parameter(name=name) for name in MOVABLE_INPUTS],
    )


def flavor_values(
    flavor: str, options: KubernetesOptions, queue_name: str | None = None
) -> dict[str, str]:
    """The movable template's inputs for a batch on ``flavor``: its queue, image, and a pod
    spec patch with the main container's resources and Argo's own containers' requests."""
    resources = _container_resources(flavor, options).model_dump(by_alias=True, exclude_none=True)
    return {
        "flavor": flavor,
        "queue": options.queue_of(flavor, queue_name),
        "image": image_of(flavor, options),
        "pod-spec-patch": _executor_patch(options, {"resources": resources}),
    }


def moves_configmap(workflow_name: str) -> str:
    """The ConfigMap in which re-placement records the batches it moved (see ``replace.py``)."""
    return f"{workflow_name}-moves"


def moved_key(index: int | str, name: str) -> str:
    return f"batch-{index}.{name}"


def _batch_template(spec: WorkflowSpec, options: KubernetesOptions, shape: PodShape) -> Container:
    env = [
        m.EnvVar(name="HOME", value="/tmp"),
        m.EnvVar(name="PYTHONDONTWRITEBYTECODE", value="1"),
        m.EnvVar(name="MPLCONFIGDIR", value="/tmp/matplotlib"),
        *_provenance_env(shape.flavor, shape.image),
        *(m.EnvVar(name=k, value=v) for k, v in sorted(options.extra_env.items())),
        *_ibm_runtime_env(spec, options),
    ]
    return Container(
        name=shape.template,
        inputs=[Parameter(name="batch", description="index of the batch to run"), *shape.inputs],
        labels={
            **EXECUTOR_SELECTOR,
            FLAVOR_LABEL: shape.flavor,
            BATCH_LABEL: "{{inputs.parameters.batch}}",
            **shape.labels,
        },
        image=shape.image,
        image_pull_policy=options.image_pull_policy,
        command=["hybrid-quantum"],
        # A failed batch's last lines (the CLI's one-line error) become its termination
        # message, which Argo puts in the node's message, which the sensor reports.
        termination_message_policy="FallbackToLogsOnError",
        args=[
            "run-batch",
            spec.manifest_uri,
            "--batch",
            "{{inputs.parameters.batch}}",
            *mode_arguments(spec),
        ],
        env=env,
        env_from=[
            m.EnvFromSource(
                prefix=options.store_env_prefix,
                secret_ref=m.SecretEnvSource(
                    name=options.store_secret, optional=options.store_secret_optional
                ),
            )
        ],
        resources=shape.resources,
        security_context=_container_security_context(),
        pod_security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=options.run_as_user,
            run_as_group=options.run_as_group,
            fs_group=options.run_as_group,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        automount_service_account_token=False,
        executor=m.ExecutorConfig(service_account_name=options.service_account),
        pod_spec_patch=shape.pod_spec_patch,
        active_deadline_seconds=options.active_deadline_seconds or None,
        retry_strategy=m.RetryStrategy(
            limit=m.IntOrString(options.retry_limit),
            retry_policy="Always",
            expression=RETRY_EXPRESSION,
            backoff=m.Backoff(
                duration=options.retry_backoff,
                factor=m.IntOrString(2),
                cap=options.retry_backoff_cap,
                max_duration=options.retry_max_duration,
            ),
        ),
        volumes=[
            m.Volume(
                name="scratch",
                empty_dir=m.EmptyDirVolumeSource(
                    medium="Memory", size_limit=m.Quantity(options.scratch_size_limit)
                ),
            )
        ],
        volume_mounts=[m.VolumeMount(name="scratch", mount_path="/tmp")],
        metrics=batch_metrics(shape.flavor),
    )


def compile_workflow(
    spec: WorkflowSpec, options: KubernetesOptions | None = None
) -> dict[str, Any]:
    """The Argo Workflow for ``spec``, as the dict the Kubernetes API takes."""
    options = options or KubernetesOptions()
    if not spec.batches:
        raise InputError(f"workflow {spec.name} has no batches to run")
    flavors = spec.flavors
    queues = {flavor: options.queue_for(spec, flavor) for flavor in flavors}
    one_queue = len(set(queues.values())) == 1

    identity = {**spec.labels, JOB_LABEL: label_value(spec.job_name)}
    pod_labels = dict(identity)
    if one_queue and not spec.replacement:
        pod_labels[KUEUE_QUEUE_NAME_LABEL] = queues[flavors[0]]
    if spec.priority_class:
        pod_labels[KUEUE_PRIORITY_CLASS_LABEL] = spec.priority_class
    annotations = {SPEC_HASH_ANNOTATION: spec_hash(spec), MANIFEST_ANNOTATION: spec.manifest_uri}
    if spec.replacement:
        annotations[REPLACEMENT_ANNOTATION] = spec.replacement.model_dump_json()
        if spec.queue_name:
            annotations[QUEUE_ANNOTATION] = spec.queue_name

    with Workflow(
        api_version=API_VERSION,
        kind="Workflow",
        name=spec.name,
        namespace=options.namespace,
        labels={**identity, "app.kubernetes.io/part-of": "hybrid-quantum"},
        annotations=annotations,
        entrypoint=ENTRYPOINT,
        service_account_name=options.service_account,
        image_pull_secrets=[m.LocalObjectReference(name=n) for n in options.image_pull_secrets]
        or None,
        pod_metadata=m.Metadata(labels=pod_labels),
        pod_gc=m.PodGC(strategy=options.pod_gc_strategy),
        ttl_strategy=m.TTLStrategy(seconds_after_completion=options.ttl_seconds_after_completion),
    ) as workflow:
        movable = _batch_template(spec, options, movable_shape()) if spec.replacement else None
        templates = {
            flavor: movable
            or _batch_template(
                spec,
                options,
                fixed_shape(
                    flavor, options, {} if one_queue else {KUEUE_QUEUE_NAME_LABEL: queues[flavor]}
                ),
            )
            for flavor in flavors
        }
        with DAG(name=ENTRYPOINT):
            for flavor in flavors:
                Task(
                    name=task_name(flavor),
                    template=templates[flavor],
                    arguments=_task_arguments(spec, flavor, options),
                    with_items=[b.index for b in spec.batches if b.flavor == flavor],
                )
    return workflow.to_dict()


def _task_arguments(
    spec: WorkflowSpec, flavor: str, options: KubernetesOptions
) -> list[Parameter] | dict[str, str]:
    """The batch index; for a movable template also the flavor's inputs, each read from the
    moves ConfigMap first (a moved batch's pod is recreated with its new flavor's), defaulting
    to the flavor the batch was placed on (Argo's ``valueFrom.default``)."""
    if not spec.replacement:
        return {"batch": "{{item}}"}
    source = moves_configmap(spec.name)
    return [
        Parameter(name="batch", value="{{item}}"),
        *(
            Parameter(
                name=name,
                value_from=m.ValueFrom(
                    config_map_key_ref=m.ConfigMapKeySelector(
                        name=source, key=moved_key("{{item}}", name)
                    ),
                    default=value,
                ),
            )
            for name, value in flavor_values(flavor, options, spec.queue_name).items()
        ),
    ]


class Movable(NamedTuple):
    """How a compiled workflow's batches may move: the rule, and the LocalQueue named for all."""

    rule: Replacement
    queue_name: str | None


def movable_of(workflow: dict[str, Any]) -> Movable | None:
    """The re-placement a compiled workflow carries, or None when its batches stay put."""
    annotations = workflow.get("metadata", {}).get("annotations") or {}
    found = annotations.get(REPLACEMENT_ANNOTATION)
    if not found:
        return None
    return Movable(Replacement.model_validate_json(found), annotations.get(QUEUE_ANNOTATION))


def batches_of(workflow: dict[str, Any]) -> list[tuple[int, str]]:
    """(batch index, flavor) of every batch a compiled workflow fans out over."""
    found: list[tuple[int, str]] = []
    for template in workflow.get("spec", {}).get("templates", []):
        if template.get("name") != ENTRYPOINT:
            continue
        for task in (template.get("dag") or {}).get("tasks", []):
            name = task.get("name", "")
            if name.startswith("batches-"):
                flavor = name.removeprefix("batches-")
                found += [(int(item), flavor) for item in task.get("withItems", [])]
    return sorted(found)
