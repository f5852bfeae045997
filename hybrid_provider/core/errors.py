"""Errors the core raises for bad input; the CLI and the operators show their text as is."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_core import ErrorDetails


class HybridQuantumError(Exception):
    """Base class: the message names the problem and what to do about it."""


class InputError(HybridQuantumError, ValueError):
    """The circuit, observables or options given cannot be used."""


class CutPlanError(HybridQuantumError, ValueError):
    """No cut plan meets the constraints asked for."""


class ArtifactError(HybridQuantumError):
    """An artifact in the store is missing, incomplete or fails its checksum."""


class ProviderError(HybridQuantumError):
    """The QPU provider failed or cancelled a job: a retry would reattach to the same job.

    Not retried automatically; a new run of the batch (a new task try) submits a new job.
    """


class BackendError(HybridQuantumError):
    """The workflow backend is unknown, unreachable or refused the request."""


def invalid_fields(what: str, exc: ValidationError, fix: str) -> InputError:
    """An InputError naming each invalid field and what is wrong with it, never its value.

    Raise it ``from None``: a chained ValidationError would print the values in the traceback.
    """
    return InputError(
        f"invalid {what} ({one_line(exc)}); {fix} (values are not shown: they may be secret)"
    )


def one_line(exc: ValidationError) -> str:
    """Pydantic's report as one line, ``field: problem; ...``, never the values given.

    Pydantic's own message quotes every input, and a connection's extras may hold secrets (a
    misspelt key's value often is one), so only the field's location and the problem are kept.
    An :class:`InputError` a validator raises arrives inside a ValidationError; its message is
    kept as it is.
    """
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or 'value'}: {_problem(error)}"
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    )


def _problem(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "not a known field"
    return error["msg"].removeprefix("Value error, ")
