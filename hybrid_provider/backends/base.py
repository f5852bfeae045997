"""The backend seam: what every place that runs batches must offer."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import WorkflowStatus
from hybrid_provider.core.errors import BackendError, InputError


@runtime_checkable
class WorkflowBackend(Protocol):
    name: str

    def submit(self, spec: WorkflowSpec) -> WorkflowStatus:
        """Start the work, or return the status of the same workflow submitted before."""

    def status(self, workflow_name: str) -> WorkflowStatus:
        """The normalised status; raises BackendError when no such workflow exists."""

    def stop(self, workflow_name: str) -> None:
        """Stop running batches and admit no more; finished results stay."""

    def logs(self, workflow_name: str, tail: int = 200) -> str:
        """The last lines of the workflow's logs."""

    def ui_url(self, workflow_name: str) -> str | None:
        """Where a person can watch it, if anywhere."""

    def config(self) -> dict[str, object]:
        """JSON-able constructor arguments (for the trigger, which rebuilds the backend)."""


BACKENDS = ("local", "kubernetes")


def get_backend(name: str, **config) -> WorkflowBackend:
    """Build a backend by name; ``config`` goes to its constructor."""
    if name == "local":
        from hybrid_provider.backends.local.backend import LocalBackend

        return LocalBackend(**config)
    if name == "kubernetes":
        try:
            from hybrid_provider.backends.kubernetes.backend import KubernetesBackend
        except ImportError as exc:
            raise BackendError(
                "the kubernetes backend is not available in this installation"
            ) from exc
        return KubernetesBackend(**config)
    raise InputError(  # the name is not echoed: it may come from a connection (one rule for all)
        f"unknown backend: the task's backend argument or the connection's backend field must "
        f"be one of {', '.join(BACKENDS)}"
    )
