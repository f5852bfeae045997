"""``flavor="auto"``: where a job's batches run, decided from live queue telemetry and history.

Pure and Airflow-free, like the quantum core: a backend reports a :class:`TelemetrySnapshot`
(``telemetry()``), earlier runs leave a small :class:`History` index in the store, and
:func:`place` turns both and the job's shape into a :class:`Placement` (a flavor per batch, and
the numbers it compared). The submit operator, the CLI and the benchmark call the same function.
"""

from hybrid_provider.placement.history import History, load_history, record_run
from hybrid_provider.placement.policy import AUTO, JobShape, Placement, place
from hybrid_provider.placement.telemetry import FlavorTelemetry, TelemetrySnapshot

__all__ = [
    "AUTO",
    "FlavorTelemetry",
    "History",
    "JobShape",
    "Placement",
    "TelemetrySnapshot",
    "load_history",
    "place",
    "record_run",
]
