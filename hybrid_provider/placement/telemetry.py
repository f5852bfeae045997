"""What a backend says about its queues at one moment: one typed snapshot per decision."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from hybrid_provider.constants import Flavor


class FlavorTelemetry(BaseModel):
    """One flavor's queue, in batches (one batch is one pod, one Kueue Workload).

    ``slots`` is how many of our batches the flavor's quota holds at once (Kueue: the nominal
    quota divided by one batch pod's requests); ``in_use`` how many of those are taken now by
    anyone; ``pending`` how many workloads wait ahead of a new one (None: not known, e.g. the
    visibility API is not served); ``has_queue`` whether a LocalQueue (or the local queue) takes
    this flavor at all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flavor: Flavor
    has_queue: bool
    slots: int = Field(ge=0)
    in_use: int = Field(default=0, ge=0)
    pending: int | None = Field(default=0, ge=0)
    admitted_workloads: int = Field(default=0, ge=0)
    note: str | None = None

    @property
    def free(self) -> int:
        return max(0, self.slots - self.in_use)

    @property
    def eligible(self) -> bool:
        """Quota and a queue: the only flavors placement may choose."""
        return self.has_queue and self.slots > 0


class TelemetrySnapshot(BaseModel):
    """Every flavor's queue as the backend saw it at ``taken_at``.

    ``max_parallel`` is the backend's own cap on one run's concurrent batches whatever the
    quota (the local runner's worker processes: the machine's cores); None on a cluster.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    taken_at: datetime
    flavors: dict[Flavor, FlavorTelemetry]
    max_parallel: int | None = Field(default=None, ge=1)

    def of(self, flavor: Flavor) -> FlavorTelemetry:
        """The flavor's queue; a flavor the backend did not report has neither queue nor quota."""
        return self.flavors.get(flavor) or FlavorTelemetry(
            flavor=flavor, has_queue=False, slots=0, note="not reported by the backend"
        )

    def line(self) -> str:
        """One log line: slots, in use and pending per flavor."""
        return "; ".join(
            f"{f.value}: {t.in_use}/{t.slots} slots in use, "
            f"{'?' if t.pending is None else t.pending} pending"
            + ("" if t.has_queue else ", no queue")
            for f, t in sorted(self.flavors.items())
        )
