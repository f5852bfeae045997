"""The Kubernetes backend: Argo Workflows whose pods Kueue admits.

``compile`` and ``status`` are pure (no Airflow, no network); ``backend`` talks to the cluster
through the hooks in ``hybrid_provider.hooks.kubernetes``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.backends.base import BackendPlugin


class KubernetesConnection(BaseModel):
    """The ``hybrid_quantum`` connection fields the kubernetes backend reads. Other extras go to
    ``compile.KubernetesOptions`` (resources, retries, TTLs, …), which refuses unknown ones."""

    model_config = ConfigDict(extra="allow")

    kubernetes_conn_id: str | None = Field(default=None, description="Kubernetes connection id")
    namespace: str | None = Field(default=None, description="Namespace for workflows")
    argo_ui_url: str | None = Field(default=None, description="Argo UI base URL (for links)")
    image: str | None = Field(default=None, description="Executor image")
    gpu_image: str | None = Field(default=None, description="Executor image for GPU batches")
    qpu_resource: str | None = Field(
        default=None, description="Extended resource a QPU is counted as"
    )


PLUGIN = BackendPlugin(
    name="kubernetes",
    backend_class="hybrid_provider.backends.kubernetes.backend:KubernetesBackend",
    options=KubernetesConnection,
    description="Argo Workflows on a Kubernetes cluster, admitted by Kueue",
)
