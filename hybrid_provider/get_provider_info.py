"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hybrid_provider.backends.base import backend_plugins, connection_form_fields

PACKAGE = "airflow-provider-hybrid-quantum"
INTEGRATION = "Hybrid Quantum (circuit cutting)"


def _version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def get_provider_info() -> dict:
    return {
        "package-name": PACKAGE,
        "name": "Hybrid Quantum",
        "description": (
            "Circuit cutting as Airflow tasks: cut a circuit, run its subexperiments as "
            "Kueue-scheduled Argo Workflows (or locally), reconstruct on a GPU with CuPy."
        ),
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://qiskit.github.io/qiskit-addon-cutting/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "hybrid_provider.operators.cut",
                    "hybrid_provider.operators.submit",
                    "hybrid_provider.operators.reconstruct",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["hybrid_provider.sensors.kueue_wait"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "hybrid_provider.hooks.hybrid_quantum",
                    "hybrid_provider.hooks.kubernetes",
                    "hybrid_provider.hooks.ibm_runtime",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["hybrid_provider.triggers.kueue_wait"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "hybrid_provider.hooks.hybrid_quantum.HybridQuantumHook",
                "hook-name": "Hybrid Quantum",
                "connection-type": "hybrid_quantum",
                "conn-fields": {
                    "backend": {
                        "label": "Backend (" + " or ".join(backend_plugins()) + ")",
                        "schema": {"type": ["string", "null"], "enum": [*backend_plugins(), None]},
                    },
                    "store_uri": {
                        "label": "Artifact store URI (file://, s3://, ...)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "flavor": {
                        "label": "Default flavor of submits (cpu, gpu, qpu or auto)",
                        "schema": {"type": ["string", "null"]},
                    },
                    **connection_form_fields(),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "password", "port", "extra"]
                },
            },
            {
                "hook-class-name": "hybrid_provider.hooks.ibm_runtime.IBMRuntimeHook",
                "hook-name": "IBM Quantum Runtime",
                "connection-type": "ibm_runtime",
                "conn-fields": {
                    "channel": {
                        "label": "Channel (ibm_quantum_platform or ibm_cloud)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "instance": {
                        "label": "Instance (CRN or name)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "port", "extra"],
                    "relabeling": {"password": "API token"},
                },
            },
        ],
        "extra-links": [
            "hybrid_provider.links.ResultsReportLink",
            "hybrid_provider.links.ArgoWorkflowLink",
        ],
        "config": {
            "hybrid_quantum": {
                "description": "Defaults for the Hybrid Quantum provider's operators.",
                "options": {
                    "store_uri": {
                        "description": (
                            "Artifact store for cut jobs, batch results and reports, when "
                            "neither the task nor its connection names one."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/hybrid-quantum",
                        "default": "file://{AIRFLOW_HOME}/hybrid-quantum",
                    },
                    "argo_ui_url": {
                        "description": (
                            "Base URL of the Argo Workflows UI, for the task's 'Argo Workflow' "
                            "link, when the hybrid_quantum connection names none."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://argo.example.org",
                        "default": None,
                    },
                },
            }
        },
    }
