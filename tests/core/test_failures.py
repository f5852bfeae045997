"""The one failure policy (core/failures.py): bad input fails at once, the rest is retried.

Spec: every project error class, pydantic's ValidationError (an InputError raised inside a
validator) and the OS errors a user's path causes have one disposition, the same for the
operators (AirflowFailException or not), the CLI (exit code 2 or 1) and the local runner.
"""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from pydantic import BaseModel, ValidationError, field_validator

from hybrid_provider.cli import main
from hybrid_provider.core.errors import (
    ArtifactError,
    BackendError,
    CutPlanError,
    HybridQuantumError,
    InputError,
)
from hybrid_provider.core.failures import Disposition, describe, disposition, exit_code
from hybrid_provider.operators._common import bad_input_fails_task


class _Named(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        if value != value.lower():
            raise InputError("workflow names are lower case: use my-run")
        return value


def _validation_error() -> ValidationError:
    try:
        _Named(name="My_Run")
    except ValidationError as exc:
        return exc
    raise AssertionError("the validator accepted it")


CASES = [
    (InputError("bad observable"), Disposition.FAIL, 2),
    (CutPlanError("no plan fits"), Disposition.FAIL, 2),
    (ArtifactError("batch 3 fails its checksum"), Disposition.FAIL, 2),
    (_validation_error(), Disposition.FAIL, 2),
    (FileNotFoundError("circuit.qasm"), Disposition.FAIL, 2),
    (PermissionError("store"), Disposition.FAIL, 2),
    (BackendError("the cluster did not answer"), Disposition.RETRY, 1),
    (HybridQuantumError("anything else of ours"), Disposition.RETRY, 1),
    (RuntimeError("Aer failed"), Disposition.RETRY, 1),
    (OSError(28, "No space left on device"), Disposition.RETRY, 1),
]


@pytest.mark.parametrize(("error", "expected", "code"), CASES, ids=lambda c: type(c).__name__)
def test_each_error_class_has_one_disposition_and_exit_code(error, expected, code):
    assert disposition(error) == expected and exit_code(error) == code


@pytest.mark.parametrize(("error", "expected", "code"), CASES, ids=lambda c: type(c).__name__)
def test_the_operators_fail_without_retry_exactly_on_bad_input(error, expected, code):
    with pytest.raises(Exception) as raised, bad_input_fails_task():
        raise error
    if expected == Disposition.FAIL:
        assert isinstance(raised.value, AirflowFailException)
        assert str(raised.value) == describe(error)
    else:
        assert raised.value is error  # left to Airflow's retries


def test_an_input_error_inside_a_validator_reads_as_its_own_sentence():
    assert describe(_validation_error()) == "name: workflow names are lower case: use my-run"


OURS = [case for case in CASES if not isinstance(case[0], RuntimeError)]


@pytest.mark.parametrize(("error", "expected", "code"), OURS, ids=lambda c: type(c).__name__)
def test_the_cli_exits_with_the_policys_code_and_one_line(
    error, expected, code, monkeypatch, capsys
):
    def fail(_args):
        raise error

    monkeypatch.setattr("hybrid_provider.cli._reconstruct", fail)
    assert main(["reconstruct", "file:///nowhere/manifest.json"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_unexpected_error_keeps_its_traceback_and_python_exits_1(monkeypatch):
    """A bug is not bad input: it propagates (Python prints the traceback, exits 1, retried)."""

    def fail(_args):
        raise RuntimeError("Aer failed")

    monkeypatch.setattr("hybrid_provider.cli._reconstruct", fail)
    with pytest.raises(RuntimeError, match="Aer failed"):
        main(["reconstruct", "file:///nowhere/manifest.json"])
