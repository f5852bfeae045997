"""One failure policy: which errors fail at once and which are worth another try.

Bad input does not fix itself: a retry costs a ``retry_delay`` (Airflow), a pod (Argo) or a
worker (the local runner) and ends the same way. Everything else may be transient (a cluster
that did not answer, a worker that crashed) and is retried by whoever runs the work. The
operators, the local runner and the CLI's exit code (which Argo's retry expression reads) all
ask :func:`disposition`, so a case cannot be bad input in one place and bad luck in another.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError

from hybrid_provider.core.errors import (
    ArtifactError,
    BackendError,
    CutPlanError,
    InputError,
    ProviderError,
    one_line,
)


class Disposition(StrEnum):
    FAIL = "fail"  # bad input: fail now, never retry
    RETRY = "retry"  # possibly transient: let the retry policy in place decide


#: The CLI's exit codes: 0 success, 2 bad input (Argo does not retry it: see
#: ``backends.kubernetes.compile.RETRY_EXPRESSION``), 1 anything else (retried).
EXIT_CODES = {Disposition.FAIL: 2, Disposition.RETRY: 1}

#: Errors that are the input's fault. A ValidationError is one too: pydantic wraps the
#: InputError a validator raises. A missing or unreadable file named by the user is as well.
BAD_INPUT: tuple[type[BaseException], ...] = (
    InputError,
    CutPlanError,
    ArtifactError,
    ValidationError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
)


def disposition(exc: BaseException) -> Disposition:
    """FAIL for bad input and jobs the QPU provider failed; RETRY for everything else."""
    if isinstance(exc, BackendError):
        return Disposition.RETRY
    if isinstance(exc, ProviderError):  # a retry would reattach to the same failed job
        return Disposition.FAIL
    return Disposition.FAIL if isinstance(exc, BAD_INPUT) else Disposition.RETRY


def exit_code(exc: BaseException) -> int:
    return EXIT_CODES[disposition(exc)]


def describe(exc: BaseException) -> str:
    """The one line a person reads: the project's own message, pydantic's in one line."""
    if isinstance(exc, ValidationError):
        return one_line(exc)
    return str(exc) or type(exc).__name__
