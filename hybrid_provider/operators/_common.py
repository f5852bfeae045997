"""What the operators share: the hook from their connection arguments, and error translation."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.core.errors import ArtifactError, CutPlanError, InputError
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook


class UsesHybridConnection:
    """Mixin: ``hybrid_conn_id``, ``backend`` and ``store_uri`` arguments resolve to one hook."""

    hybrid_conn_id: str
    backend: str | None
    store_uri: str | None

    @property
    def hook(self) -> HybridQuantumHook:
        return HybridQuantumHook(
            self.hybrid_conn_id, backend=self.backend, store_uri=self.store_uri
        )


@contextlib.contextmanager
def bad_input_fails_task() -> Iterator[None]:
    """Bad input will not fix itself on retry: fail the task at once with the core's message.

    Backend errors (a cluster that does not answer) are left to Airflow's retries.
    """
    try:
        yield
    except (InputError, CutPlanError, ArtifactError) as exc:
        raise AirflowFailException(str(exc)) from exc


def safe_path(text: str) -> str:
    """Run ids carry ':' and '+'; keep store paths portable across filesystems and buckets."""
    return re.sub(r"[^A-Za-z0-9._/-]+", "_", text).strip("/")
