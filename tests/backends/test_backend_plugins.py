"""Backends are plugins: a package that registers a BackendPlugin under the entry-point group
``hybrid_quantum.backends`` is a backend, with nothing in this provider naming it.

Spec: ours are found that way; the connection form lists every installed backend's fields;
a third-party package (``tests/backends/toy_backend``, installed here as a package) runs the example DAG
end to end, with the values of the exact reference, chosen by the connection alone.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_provider.backends import base
from hybrid_provider.core.errors import InputError
from hybrid_provider.get_provider_info import get_provider_info

TOY = Path(__file__).parent / "toy_backend"


def test_our_backends_are_entry_points_like_anyone_elses():
    plugins = base.backend_plugins()
    assert {"local", "kubernetes"} <= set(plugins)
    assert plugins["local"].load().__name__ == "LocalBackend"
    assert plugins["kubernetes"].load().__name__ == "KubernetesBackend"


def test_the_connection_form_is_generated_from_the_backends_options():
    info = get_provider_info()["connection-types"][0]
    fields = info["conn-fields"]
    assert fields["backend"]["schema"]["enum"][:-1] == sorted(base.backend_plugins())
    assert fields["local_quota"]["label"].endswith("(local backend)")
    assert fields["namespace"]["label"] == "Namespace for workflows (kubernetes backend)"


def test_fields_of_another_backend_are_ignored_and_unknown_ones_refused(tmp_path):
    settings = {"backend": "local", "store_uri": f"file://{tmp_path}", "namespace": "quantum"}
    assert base.backend_from_connection(settings).name == "local"  # switched back from k8s
    with pytest.raises(InputError, match=r"local_qouta: not a known field") as refused:
        base.backend_from_connection({**settings, "local_qouta": "s3cr3t"})
    assert "s3cr3t" not in str(refused.value)


@pytest.fixture(scope="module")
def toy_installed(tmp_path_factory) -> Path:
    """The toy backend installed (uv, as ``make install`` does) into a folder of its own."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "uv", "pip", "install", "--quiet", "-p", sys.executable,
         "--no-deps", "--target", str(site), str(TOY)],
        check=True, capture_output=True,
    )  # fmt: skip
    return site


@pytest.mark.slow
def test_a_third_party_backend_runs_the_example_dag_through_its_entry_point_alone(
    toy_installed, tmp_path, airflow_db
):
    store = tmp_path / "store"  # the job and the inline runs; the results CSV stays where the
    # DAG's asset says (the session's store), which other tests' runs registered first
    connection = {
        "conn_type": "hybrid_quantum",
        "extra": {"backend": "inline", "store_uri": f"file://{store}"},
    }
    env = {
        **__import__("os").environ,
        "PYTHONPATH": str(toy_installed),
        "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT": json.dumps(connection),
    }
    run = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "nightly_circuit_cutting", "2026-11-02"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (store / "_inline").is_dir() and not (store / "_runs").exists(), "ran inline"
    published = re.search(r"Published \d+ rows to file://(\S+)", run.stdout + run.stderr)
    assert published, "the publish task names the file it wrote"
    with open(published.group(1), newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = np.array([float(row["value"]) for row in rows])
    exact = np.array([float(row["exact"]) for row in rows])
    np.testing.assert_allclose(values, exact, rtol=0, atol=1e-8)
