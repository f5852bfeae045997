"""What the operators share: the hook from their connection arguments, and error translation."""

from __future__ import annotations

import contextlib
import re
import reprlib
from collections.abc import Iterator
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.failures import Disposition, describe, disposition
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook


class UsesHybridConnection:
    """Mixin for the provider's tasks: where they run and where their artifacts live.

    :param hybrid_conn_id: the ``hybrid_quantum`` connection (backend, store, cluster); without
        it, the local backend and ``[hybrid_quantum] store_uri``.
    :param backend: ``local`` or ``kubernetes``, overriding the connection.
    :param store_uri: the artifact store, overriding the connection.
    """

    def __init__(
        self,
        *,
        hybrid_conn_id: str = HybridQuantumHook.default_conn_name,
        backend: str | None = None,
        store_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hybrid_conn_id = hybrid_conn_id
        self.backend = backend
        self.store_uri = store_uri

    @property
    def hook(self) -> HybridQuantumHook:
        return HybridQuantumHook(
            self.hybrid_conn_id, backend=self.backend, store_uri=self.store_uri
        )


@contextlib.contextmanager
def bad_input_fails_task() -> Iterator[None]:
    """Fail the task at once, without retrying, on what ``core.failures`` calls bad input;
    leave everything else (a cluster that does not answer) to Airflow's retries."""
    try:
        yield
    except Exception as exc:
        if disposition(exc) == Disposition.FAIL:
            raise AirflowFailException(describe(exc)) from exc
        raise


def optional_whole_number(value: Any, name: str) -> int | None:
    """Like :func:`whole_number`; an absent value (``None``, or rendered as ``""``/``"None"``) is None."""
    return None if value in (None, "", "None") else whole_number(value, name)


def whole_number(value: Any, name: str) -> int:
    """An integer argument, given as a number or rendered from a template as text ("8")."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        value = str(value)  # int() would take True as 1 and truncate 2.5
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a whole number such as 4, got {reprlib.repr(value)}"
        ) from None


def safe_path(text: str) -> str:
    """Run ids carry ':' and '+'; keep store paths portable across filesystems and buckets."""
    return re.sub(r"[^A-Za-z0-9._/-]+", "_", text).strip("/")
