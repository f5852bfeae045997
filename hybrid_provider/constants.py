"""Names shared by the operators, the generated Argo Workflows and the Helm chart.

The chart in ``charts/hybrid-quantum`` renders the same names by default, and a test
compares them, so a cluster installed from the chart and a DAG using the defaults agree
without any configuration. Change a name here and in ``charts/hybrid-quantum/values.yaml``
together.
"""

from __future__ import annotations

from enum import StrEnum

# --- Upstream label and resource names (fixed by Kueue, Argo and the NVIDIA device plugin) ---
KUEUE_QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
KUEUE_ADMISSION_GATE = "kueue.x-k8s.io/admission"
ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
GPU_RESOURCE = "nvidia.com/gpu"

# --- This project's defaults ---
#: Extended resource a QPU is quota-managed as; a node advertises it as capacity.
DEFAULT_QPU_RESOURCE = "quantum.example.com/qpu"


#: Resource flavors (Kueue ``ResourceFlavor`` names) for the three kinds of worker.
class Flavor(StrEnum):
    """The resource flavors a batch can be submitted to (the chart's ResourceFlavors)."""

    CPU = "cpu"
    GPU = "gpu"
    QPU = "qpu"


FLAVORS = tuple(flavor.value for flavor in Flavor)
DEFAULT_RESOURCE_FLAVORS = {
    "cpu": "hybrid-quantum-cpu",
    "gpu": "hybrid-quantum-gpu",
    "qpu": "hybrid-quantum-qpu",
}

#: ClusterQueues: simulators (cpu and gpu flavors) and QPUs, in one cohort to borrow idle quota.
DEFAULT_COHORT = "hybrid-quantum"
DEFAULT_CLUSTER_QUEUES = {
    "simulators": "hybrid-quantum-simulators",
    "qpu": "hybrid-quantum-qpu",
}

#: LocalQueue (in the tenant namespace) a batch of each flavor is submitted to.
DEFAULT_LOCAL_QUEUES = {
    "cpu": "hybrid-quantum",
    "gpu": "hybrid-quantum",
    "qpu": "hybrid-quantum-qpu",
}

#: WorkloadPriorityClasses: nightly batch work yields to interactive runs.
PRIORITY_CLASSES = {
    "nightly": ("hybrid-quantum-nightly", 100),
    "interactive": ("hybrid-quantum-interactive", 1000),
}

#: ServiceAccounts: one for workflow pods (the Argo executor), one for the Airflow worker.
EXECUTOR_SERVICE_ACCOUNT = "hybrid-quantum-executor"
AIRFLOW_SERVICE_ACCOUNT = "hybrid-quantum-airflow"

#: WorkflowTemplate holding the batch executor step.
BATCH_WORKFLOW_TEMPLATE = "hybrid-quantum-batch"

#: Secret holding the artifact store's credentials (keys are fsspec storage options).
STORE_SECRET = "hybrid-quantum-store"

#: Executor image (the package with its CLI as entrypoint); the GPU variant adds CuPy and Aer-GPU.
DEFAULT_EXECUTOR_IMAGE = "hybrid-quantum-executor:0.1.0"
DEFAULT_EXECUTOR_GPU_IMAGE = "hybrid-quantum-executor:0.1.0-gpu"

# --- Labels this project puts on what it creates, so a retried task finds them again ---
LABEL_PREFIX = "hybrid-quantum.io"
DAG_ID_LABEL = f"{LABEL_PREFIX}/dag-id"
TASK_ID_LABEL = f"{LABEL_PREFIX}/task-id"
RUN_ID_LABEL = f"{LABEL_PREFIX}/run-id"
JOB_LABEL = f"{LABEL_PREFIX}/job"
BATCH_LABEL = f"{LABEL_PREFIX}/batch"
FLAVOR_LABEL = f"{LABEL_PREFIX}/flavor"

# --- Metrics ---
#: Prefix of every metric this project emits: the exporter's, Argo's (after Argo's own
#: ``argo_workflows_``) and the operators' StatsD names (``hybrid_quantum.``).
METRICS_PREFIX = "hybrid_quantum"
#: Histogram buckets of durations, in seconds: a batch runs for a fraction of a second (a few
#: exact subexperiments) up to hours (a QPU batch); it waits for quota about as long.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
