"""Airflow provider for distributed circuit cutting (see README.md)."""

import logging as _logging

# Qiskit logs every transpiler pass at INFO ("Pass: BasisTranslator - 0.02 (ms)"); in task and
# trigger logs that buries the plan, progress and values the provider reports.
_logging.getLogger("qiskit.passmanager").setLevel(_logging.WARNING)
