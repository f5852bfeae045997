"""``inline``: a backend another team could ship, to prove the seam is the whole contract.

It runs every batch inside the submit call, one after another, and keeps each run's status in
one JSON file under ``<store>/_inline/``. It knows the provider only through the public seam
(``BackendPlugin``, ``BlockingBackend``, ``WorkflowSpec``, ``WorkflowStatus``) and the
core's ``run_batch``; the provider knows it only through its entry point.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.backends.base import BackendPlugin, BlockingBackend
from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import BatchStatus, WorkflowPhase, WorkflowStatus
from hybrid_provider.core.errors import BackendError


class InlineConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inline_folder: str | None = Field(default=None, description="Status folder in the store")


class InlineBackend(BlockingBackend):
    name = "inline"

    def __init__(self, store_uri: str, inline_folder: str = "_inline") -> None:
        self.store_uri = store_uri
        self.inline_folder = inline_folder
        self.folder = Path(store_uri.removeprefix("file://")) / inline_folder

    def submit(self, spec: WorkflowSpec) -> WorkflowStatus:
        from hybrid_provider.core.execute.batch import run_batch

        if (self.folder / f"{spec.name}.json").exists():
            return self.status(spec.name)
        batches = []
        for task in spec.batches:
            report = run_batch(spec.manifest_uri, task.index, spec.execution)
            now = datetime.now(timezone.utc)
            batch = BatchStatus(index=task.index, flavor=task.flavor, pending_since=now)
            batch.admit(now)
            batch.succeed(now, report.duration_s, reused=report.skipped)
            batches.append(batch)
        status = WorkflowStatus(
            name=spec.name, backend=self.name, phase=WorkflowPhase.SUCCEEDED, batches=batches
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{spec.name}.json").write_text(status.model_dump_json())
        return status

    def status(self, workflow_name: str) -> WorkflowStatus:
        path = self.folder / f"{workflow_name}.json"
        if not path.exists():
            raise BackendError(f"no inline run named {workflow_name}")
        return WorkflowStatus.model_validate_json(path.read_text())

    def stop(self, workflow_name: str) -> None:
        """Nothing runs after submit returns."""

    def logs(self, workflow_name: str, tail: int = 200) -> str:
        return ""

    def ui_url(self, workflow_name: str) -> str | None:
        return None

    def config(self) -> dict[str, object]:
        return {"store_uri": self.store_uri, "inline_folder": self.inline_folder}


PLUGIN = BackendPlugin(
    name="inline",
    backend_class="toy_backend:InlineBackend",
    options=InlineConnection,
    description="every batch inside the submit task (a test's third-party backend)",
)
