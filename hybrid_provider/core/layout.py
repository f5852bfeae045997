"""Where everything lives in the artifact store, spelled once.

A store holds jobs (one folder each, named by the job) and the local backend's shared state.
Inside a job folder every path is relative, so a job copied to another store still reads::

    <job>/manifest.json            written last: a job whose manifest exists is complete
    <job>/circuit.qpy              the circuit as the user gave it (provenance, exact reference)
    <job>/plan/circuit.qpy         the circuit prepared for cutting; the cut spec indexes it
    <job>/plan/choices.npz         QPD coefficients; per subsystem, each coefficient's term
                                   choice and each choice's QPD terms
    <job>/results/batch-NNNNN.npz  a batch's outcomes (exact factors, or shot outcomes)
    <job>/results/batch-NNNNN.json its sealed record, written after the outcomes
    <job>/results/batch-NNNNN.ibm-runtime.json   a batch's QPU provider jobs, as they exist
    <job>/results/ibm-runtime-layout-<device>-<subsystem>.json   a subcircuit's pinned layout
    <job>/results/reconstruction.json, timeline.json, report.html, report.png

    <store>/_runs/<run>/           local backend: one folder per run (spec, state, logs)
    <store>/_queue/                local backend: the queue shared by every run of the store
"""

from __future__ import annotations

MANIFEST = "manifest.json"
CIRCUIT = "circuit.qpy"
PLAN_CIRCUIT = "plan/circuit.qpy"
PLAN_CHOICES = "plan/choices.npz"
RESULTS_FOLDER = "results"
RECONSTRUCTION_RESULT = f"{RESULTS_FOLDER}/reconstruction.json"
TIMELINE = f"{RESULTS_FOLDER}/timeline.json"
REPORT_HTML = "report.html"
REPORT_PNG = "report.png"

RUNS_FOLDER = "_runs"
QUEUE_FOLDER = "_queue"

_BATCH_PREFIX = f"{RESULTS_FOLDER}/batch-"


def batch_outcomes(index: int) -> str:
    return f"{_BATCH_PREFIX}{index:05d}.npz"


def batch_record(index: int) -> str:
    return f"{_BATCH_PREFIX}{index:05d}.json"


def provider_jobs(index: int) -> str:
    return f"{_BATCH_PREFIX}{index:05d}.ibm-runtime.json"


def pinned_layout(device: str, subsystem: str) -> str:
    return f"{RESULTS_FOLDER}/ibm-runtime-layout-{device}-{subsystem}.json"


def batch_of_record(relative: str) -> int | None:
    """The batch whose record is at ``relative`` (inside a job folder), else None."""
    if not (relative.startswith(_BATCH_PREFIX) and relative.endswith(".json")):
        return None
    number = relative[len(_BATCH_PREFIX) : -len(".json")]
    return int(number) if number.isdigit() else None
