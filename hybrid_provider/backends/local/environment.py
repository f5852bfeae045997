"""The environment the local runner starts with: what running batches needs, and no secret.

The runner is started by an Airflow task, whose environment holds the Airflow connections
(``AIRFLOW_CONN_*``), Airflow's own configuration and secrets (``AIRFLOW__*``, such as the
database URL and the Fernet key), cloud credentials, and the store's credentials
(``HYBRID_QUANTUM_STORE_*``). The local backend reads only ``file://`` stores and talks to no
service, so it passes on only an allow-list: finding programs and libraries, locale and time
zone, temporary space, Python's own settings, the GPU stack and the thread pools of the
numerical libraries, Qiskit's settings, and the provider's own settings except the store's
credentials. Its workers are forked from it and see the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hybrid_provider.core.store import STORE_OPTION_PREFIX

RUNNER_VARIABLES = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ"),
        *("TMPDIR", "TMP", "TEMP", "LD_LIBRARY_PATH", "VIRTUAL_ENV"),
        *("PYTHONPATH", "PYTHONHOME", "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONWARNINGS"),
        *("PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONFAULTHANDLER"),
    }
)
RUNNER_PREFIXES = (
    *("LC_", "CUDA_", "NVIDIA_", "CUPY_", "OMP_", "MKL_", "OPENBLAS_", "KMP_"),
    *("QISKIT_", "HYBRID_QUANTUM_"),
)


def runner_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The part of ``environ`` (by default this process's) that the runner may see."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if (name in RUNNER_VARIABLES or name.startswith(RUNNER_PREFIXES))
        and not name.startswith(STORE_OPTION_PREFIX)
    }
