"""The README's "Supported versions" table is true, in whichever job runs it.

The table must say what ``pyproject.toml`` declares, and the environment running the tests must
be what the table says it tests. ``make test-lowest`` sets ``HYBRID_TEST_LOWEST_BOUNDS=1``:
there every direct dependency must sit exactly at its declared lower bound (uv's
``--resolution lowest-direct``), or that bound is not what was tested and must be raised.
"""

from __future__ import annotations

import os
import re
import sys
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOWEST_BOUNDS_JOB = os.environ.get("HYBRID_TEST_LOWEST_BOUNDS") == "1"
RUNNING_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
NEWEST_SUFFIX = " or newer"


class Row(NamedTuple):
    """One line of the table; ``package`` is None for Python and the cluster components."""

    component: str
    package: str | None
    declared: str
    lowest: str
    newest: str


def table_rows(readme: str) -> list[Row]:
    """The rows of the table under the README's "Supported versions" heading."""
    section = readme.split("\n## Supported versions\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in ("component", "---"):
            continue
        package = re.search(r"\(`([^`]+)`\)", cells[0])
        rows.append(
            Row(
                component=cells[0],
                package=canonicalize_name(package.group(1)) if package else None,
                declared=cells[1].strip("`"),
                lowest=cells[2],
                newest=cells[3],
            )
        )
    return rows


def declared_requirements() -> dict[str, Requirement]:
    """The dependencies both jobs install (runtime and the test extra), by canonical name."""
    texts = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]
    return {canonicalize_name(req.name): req for req in map(Requirement, texts)}


def lower_bound(specifier: SpecifierSet) -> Version:
    """The release a ``>=`` names: every dependency must declare one, and only one."""
    floors = [Version(spec.version) for spec in specifier if spec.operator == ">="]
    assert len(floors) == 1, f"{specifier} needs exactly one '>=' lower bound"
    return floors[0]


def installed(package: str) -> Version:
    return Version(version(package))


ROWS = table_rows((ROOT / "README.md").read_text())
PACKAGE_ROWS = [row for row in ROWS if row.package]
DECLARED = declared_requirements()
(PYTHON_ROW,) = [row for row in ROWS if row.component == "Python"]


def test_table_covers_airflow_python_quantum_and_the_cluster():
    packages = {row.package for row in PACKAGE_ROWS}
    assert {"apache-airflow", "qiskit", "qiskit-aer"} <= packages
    components = {row.component for row in ROWS}
    assert {"Python", "Kubernetes", "Kueue", "Argo Workflows"} <= components


@pytest.mark.parametrize("row", PACKAGE_ROWS, ids=lambda row: row.package)
def test_declared_and_lowest_columns_are_what_pyproject_declares(row):
    declared = DECLARED[row.package].specifier
    assert SpecifierSet(row.declared) == declared
    assert Version(row.lowest) == lower_bound(declared)


def test_python_row_is_requires_python_and_the_classifiers():
    requires_python = SpecifierSet(PROJECT["requires-python"])
    assert SpecifierSet(PYTHON_ROW.declared) == requires_python
    assert Version(PYTHON_ROW.lowest) == lower_bound(requires_python)
    prefix = "Programming Language :: Python :: 3."
    classified = {c.split(" :: ")[-1] for c in PROJECT["classifiers"] if c.startswith(prefix)}
    assert classified == {PYTHON_ROW.lowest, PYTHON_ROW.newest}


def test_this_job_runs_the_python_the_table_names():
    expected = PYTHON_ROW.lowest if LOWEST_BOUNDS_JOB else PYTHON_ROW.newest
    assert expected == RUNNING_PYTHON


@pytest.mark.parametrize("package", sorted(DECLARED))
def test_installed_release_is_inside_the_declared_range(package):
    specifier = DECLARED[package].specifier
    release = installed(package)
    assert specifier.contains(release, prereleases=True), f"{package} {release} not {specifier}"
    if LOWEST_BOUNDS_JOB:
        assert release == lower_bound(specifier), (
            f"{package}: the lower-bound job installed {release}, not the declared "
            f"{specifier}; something forces it higher, so raise the bound to what is tested"
        )


@pytest.mark.parametrize("row", PACKAGE_ROWS, ids=lambda row: row.package)
def test_this_job_runs_the_release_the_table_names(row):
    release = installed(row.package)
    if LOWEST_BOUNDS_JOB:
        assert release == Version(row.lowest)
    else:
        assert row.newest.endswith(NEWEST_SUFFIX), row.newest
        assert release >= Version(row.newest.removesuffix(NEWEST_SUFFIX))


def test_cluster_rows_are_the_versions_the_real_engine_suite_builds():
    """Kubernetes, Kueue and Argo are tested at the pins of tests/controlplane/engines.py."""
    sys.path.insert(0, str(ROOT / "tests" / "controlplane"))
    try:
        import engines
    finally:
        sys.path.pop(0)
    built = engines.versions()
    rows = {row.component: row.newest.split()[0] for row in ROWS}
    assert rows["Kubernetes"] == built["kubernetes"]
    assert rows["Kueue"] == built["kueue"]
    assert rows["Argo Workflows"] == built["argo-workflows"]
