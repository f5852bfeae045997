"""The ``ibm_runtime`` connection: an IBM Quantum account (channel, instance, token).

On the local backend the submit task reads it and hands the account to the local runner as the
``QISKIT_IBM_*`` variables that ``core.execute.ibm_runtime`` reads (the runner passes on
``QISKIT_*`` only, and writes none of it anywhere). On Kubernetes the same variables come from
a Secret (``ibm_runtime_secret`` in the ``hybrid_quantum`` connection), by reference: the token
never appears in a workflow, a log, an XCom or the store. Fake devices (``ibm-runtime:fake_*``)
need no account.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.runtime_options import (
    CHANNEL_VARIABLE,
    DEFAULT_CHANNEL,
    INSTANCE_VARIABLE,
    TOKEN_VARIABLE,
)

CHANNELS = ("ibm_quantum_platform", "ibm_cloud")


class IBMRuntimeHook(BaseHook):
    """An IBM Quantum account from an Airflow connection: password = API token; extras
    ``channel`` (default ``ibm_quantum_platform``) and ``instance`` (the CRN or name).

    :param ibm_runtime_conn_id: the connection.
    """

    conn_name_attr = "ibm_runtime_conn_id"
    default_conn_name = "ibm_runtime_default"
    conn_type = "ibm_runtime"
    hook_name = "IBM Quantum Runtime"

    def __init__(self, ibm_runtime_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.ibm_runtime_conn_id = ibm_runtime_conn_id

    def environment(self) -> dict[str, str]:
        """The account as the ``QISKIT_IBM_*`` variables a batch reads."""
        connection = self.get_connection(self.ibm_runtime_conn_id)
        extra = connection.extra_dejson
        channel = extra.get("channel") or DEFAULT_CHANNEL
        if channel not in CHANNELS:
            raise InputError(
                f"the {self.ibm_runtime_conn_id} connection's channel must be one of "
                f"{', '.join(CHANNELS)} (docs/ibm-quantum.md)"
            )
        if not connection.password:
            raise InputError(
                f"the {self.ibm_runtime_conn_id} connection has no token: put the IBM Quantum "
                "API key in its password field (docs/ibm-quantum.md)"
            )
        environment = {CHANNEL_VARIABLE: channel, TOKEN_VARIABLE: connection.password}
        if extra.get("instance"):
            environment[INSTANCE_VARIABLE] = str(extra["instance"])
        return environment

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "login", "port", "extra"],
            "relabeling": {"password": "API token"},
        }
