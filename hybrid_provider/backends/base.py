"""The backend seam: what every place that runs batches must offer, and how backends are found.

A backend is a package's entry point in the group ``hybrid_quantum.backends`` naming a
:class:`BackendPlugin`: its name, the connection fields it reads (typed, so the connection
form is generated from them) and the import path of its :class:`WorkflowBackend` class. Ours
(``local``, ``kubernetes``) are registered the same way as a third party's (Ray, Slurm, …):
installing a package is all it takes.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from hybrid_provider.backends.spec import WorkflowSpec
from hybrid_provider.backends.status import WorkflowStatus
from hybrid_provider.core.errors import BackendError, InputError, invalid_fields

if TYPE_CHECKING:
    from hybrid_provider.placement.telemetry import TelemetrySnapshot

ENTRY_POINT_GROUP = "hybrid_quantum.backends"


@runtime_checkable
class WorkflowBackend(Protocol):
    """Where batches run. Every method may be called from any task or process: a backend keeps
    no state between calls that its ``config()`` cannot rebuild (the trigger rebuilds it in the
    triggerer; the sensor rebuilds it from what the submit task returned)."""

    name: ClassVar[str]

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

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``get_backend(name, **config())`` is this backend."""

    async def astatus(self, workflow_name: str) -> WorkflowStatus:
        """``status`` for the triggerer's event loop, which it must never block."""

    async def astop(self, workflow_name: str) -> None:
        """``stop`` for the triggerer (a user killed the deferred task)."""


@runtime_checkable
class ReportsTelemetry(Protocol):
    """A backend that can say how its queues stand, so ``flavor="auto"`` can place batches on
    it (``hybrid_provider.placement``). Optional: a backend without it takes named flavors only."""

    def telemetry(self) -> TelemetrySnapshot:
        """Every flavor's quota, use and queue now, in batches (one batch = one pod)."""


class BlockingBackend:
    """For backends whose calls are quick file or network reads: the async methods run the
    blocking ones in a worker thread, off the triggerer's loop."""

    async def astatus(self, workflow_name: str) -> WorkflowStatus:
        return await asyncio.to_thread(self.status, workflow_name)  # type: ignore[attr-defined]

    async def astop(self, workflow_name: str) -> None:
        await asyncio.to_thread(self.stop, workflow_name)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BackendPlugin:
    """What a backend's entry point names: cheap to load (no backend imports), so the
    connection form and the provider's info can list every backend installed.

    :param name: what a connection's ``backend`` field and a task's ``backend`` say.
    :param backend_class: ``module:Class`` of the WorkflowBackend, imported when one is built.
    :param options: the connection extras the backend reads; each field's description is its
        label in the connection form. ``build`` receives them validated.
    :param description: one line for the form and the docs.
    """

    name: str
    backend_class: str
    options: type[BaseModel]
    description: str

    def connection_fields(self) -> dict[str, FieldInfo]:
        """The options by the name the connection uses (a field's alias, else its name)."""
        return {info.alias or name: info for name, info in self.options.model_fields.items()}

    def load(self) -> type:
        module, _, attribute = self.backend_class.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            raise BackendError(
                f"the {self.name} backend is not available in this installation ({exc.name} "
                "is missing): install the package that provides it"
            ) from exc

    def build(self, store_uri: str, extras: Mapping[str, Any]) -> WorkflowBackend:
        """The backend a connection describes: its store and its extras, checked."""
        try:
            options = self.options.model_validate(dict(extras))
        except ValidationError as exc:
            raise invalid_fields(
                f"{self.name} backend fields in the hybrid_quantum connection",
                exc,
                "correct or remove them in the connection",
            ) from None
        return self.load()(store_uri=store_uri, **options.model_dump(exclude_none=True))


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def backend_plugins() -> dict[str, BackendPlugin]:
    """Every installed backend, by name."""
    return {name: plugin(name) for name in sorted(_entry_points())}


def plugin(name: str) -> BackendPlugin:
    point = _entry_points().get(name)
    if point is None:
        raise InputError(  # the name is not echoed: it may come from a connection
            "unknown backend: the task's backend argument or the connection's backend field "
            f"must be one of {', '.join(sorted(_entry_points()))} (the backends installed)"
        )
    found = point.load()
    if not isinstance(found, BackendPlugin) or found.name != name:
        raise BackendError(
            f"the entry point {name} in {ENTRY_POINT_GROUP} does not name a BackendPlugin "
            "of that name: the package that registers it is broken"
        )
    return found


#: Connection fields every backend shares; the rest belong to one backend's ``options``.
COMMON_FIELDS = ("backend", "store_uri", "flavor")


def backend_from_connection(settings: Mapping[str, Any]) -> WorkflowBackend:
    """The backend a ``hybrid_quantum`` connection's fields describe.

    Fields left empty in the form are dropped; fields of *another* installed backend are
    ignored (switching ``backend`` back and forth keeps them); anything else goes to the chosen
    backend's options, which refuse what they do not know (a misspelt field is an error).
    """
    chosen = plugin(str(settings.get("backend") or "local"))
    mine = chosen.connection_fields()
    others = {
        field
        for other in backend_plugins().values()
        if other.name != chosen.name
        for field in other.connection_fields()
    }
    extras = {
        key: value
        for key, value in settings.items()
        if key not in COMMON_FIELDS
        and value not in (None, "")
        and (key in mine or key not in others)
    }
    return chosen.build(str(settings["store_uri"]), extras)


def connection_form_fields() -> dict[str, dict[str, Any]]:
    """The connection form's fields, from every installed backend's typed options."""
    fields: dict[str, dict[str, Any]] = {}
    for found in backend_plugins().values():
        for field, info in found.connection_fields().items():
            fields.setdefault(field, {
                "label": f"{info.description or field} ({found.name} backend)",
                "schema": {"type": ["string", "null"]},
            })  # fmt: skip
    return fields


def get_backend(name: str, **config: Any) -> WorkflowBackend:
    """Rebuild a backend from its name and ``config()`` (the trigger and the sensor do)."""
    return plugin(name).load()(**config)
