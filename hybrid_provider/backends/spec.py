"""The compiled description of a run: which batches, on which flavor, with which options.

Both backends take the same spec: the local backend runs it in a process pool, the Kubernetes
backend compiles it into one Argo Workflow that fans out over the batches.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybrid_provider.constants import FLAVORS, Flavor
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.manifest import JobManifest

MAX_NAME_LENGTH = 63


class BatchTask(BaseModel):
    """One batch of the job as one unit of work: an Argo task (a pod), a local worker's job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    flavor: Flavor = Flavor.CPU
    num_subexperiments: int


class Replacement(BaseModel):
    """Re-placement while waiting (``flavor="auto"``): a batch not admitted after ``after_s``
    moves to another of ``flavors`` whose quota has a free slot. Results do not depend on the
    flavor, so one job may mix them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flavors: list[Flavor]
    after_s: float = Field(gt=0)


class WorkflowSpec(BaseModel):
    """Everything a backend needs to run a job's batches, and nothing about where it runs:
    the same spec goes to any backend. Submitting it twice under one name is a no-op (the
    name is derived from the DAG, task and run), so a retried submit reattaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    manifest_uri: str
    job_name: str
    execution: ExecutionOptions
    batches: list[BatchTask]
    queue_name: str | None = None
    priority_class: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    replacement: Replacement | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > MAX_NAME_LENGTH:
            raise InputError(
                f"workflow name '{name}' is not a DNS-1123 label (lower-case letters, digits "
                f"and '-', at most {MAX_NAME_LENGTH} characters)"
            )
        return name

    @property
    def flavors(self) -> list[str]:
        return sorted({b.flavor for b in self.batches})

    @property
    def reachable_flavors(self) -> list[str]:
        """The batches' flavors and those re-placement may move them to."""
        moves = self.replacement.flavors if self.replacement else []
        return sorted({*self.flavors, *moves})


def compile_spec(
    manifest: JobManifest,
    manifest_uri: str,
    name: str,
    execution: ExecutionOptions,
    *,
    flavor: str | dict[int, str] = "cpu",
    queue_name: str | None = None,
    priority_class: str | None = None,
    labels: dict[str, str] | None = None,
    replacement: Replacement | None = None,
) -> WorkflowSpec:
    """One task per batch of the manifest; ``flavor`` is one flavor or a per-batch mapping."""
    per_batch = flavor if isinstance(flavor, dict) else {}
    tasks = []
    for batch in manifest.batches:
        chosen = per_batch.get(batch.index, "cpu") if per_batch else flavor
        if chosen not in FLAVORS:
            raise InputError(f"unknown flavor '{chosen}': use one of {', '.join(FLAVORS)}")
        tasks.append(
            BatchTask(index=batch.index, flavor=Flavor(chosen), num_subexperiments=batch.count)
        )
    return WorkflowSpec(
        name=name,
        manifest_uri=manifest_uri,
        job_name=manifest.job_name,
        execution=execution,
        batches=tasks,
        queue_name=queue_name,
        priority_class=priority_class,
        labels=labels or {},
        replacement=replacement,
    )


def workflow_name(*parts: str, prefix: str = "hq") -> str:
    """A deterministic DNS-1123 name from identifying parts (dag_id, task_id, run_id).

    Readable where the parts allow, and always unique through a hash of all of them, so a
    retried task computes the same name and finds the workflow it already submitted.
    """
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]
    readable = re.sub(r"[^a-z0-9]+", "-", "-".join(parts[:2]).lower()).strip("-")
    room = MAX_NAME_LENGTH - len(prefix) - len(digest) - 2
    readable = readable[:room].strip("-")
    return "-".join(p for p in (prefix, readable, digest) if p)


def label_value(text: str) -> str:
    """A Kubernetes label value (63 characters of [A-Za-z0-9._-]) that still reads like ``text``."""
    if len(text) <= MAX_NAME_LENGTH and re.fullmatch(
        r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", text
    ):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[: MAX_NAME_LENGTH - 11].strip("-_.")
    return f"{readable}-{digest}" if readable else digest
