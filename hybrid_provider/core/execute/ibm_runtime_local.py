"""IBM Runtime's local testing mode, with jobs that outlive the process that submitted them.

In local testing mode (a fake device as the ``mode``) qiskit-ibm-runtime runs a job inside the
submitting process: the job has an id but no server behind it, so a killed runner takes its
job with it and nothing can look the id up again (a real account's ``service.job(id)`` asks
IBM's servers). To test reattaching honestly, each local job runs in a detached process of its
own, playing the provider's server: it runs the real ``Batch`` and ``SamplerV2`` on the fake
device and leaves its status and result in a folder named by the job id, where
:func:`local_job` finds them from any later process. Queue positions do not exist locally.

Run as ``python -m hybrid_provider.core.execute.ibm_runtime_local JOB_FOLDER``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit, qpy

from hybrid_provider.core.errors import ArtifactError, InputError, ProviderError

#: Where local jobs keep their folders (default: ``~/.cache/hybrid-quantum/ibm-runtime-local``).
JOBS_VARIABLE = "HYBRID_QUANTUM_IBM_LOCAL_JOBS"
_STATUS, _REQUEST, _PUBS, _RESULT = "status.json", "request.json", "pubs.qpy", "result.json"
_PID = "pid"


def jobs_root() -> Path:
    configured = os.environ.get(JOBS_VARIABLE)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "hybrid-quantum" / "ibm-runtime-local"


def fake_device(name: str):
    """The fake device ``fake_torino`` names (``FakeTorino``, or ``FakeManilaV2`` for older ones)."""
    from qiskit_ibm_runtime import fake_provider

    stem = "Fake" + "".join(part.capitalize() for part in name.removeprefix("fake_").split("_"))
    for class_name in (stem, stem + "V2"):
        device_class = getattr(fake_provider, class_name, None)
        if device_class is not None:
            return device_class()
    raise InputError(
        f"no fake device '{name}' in qiskit-ibm-runtime's fake_provider; use one such as "
        "ibm-runtime:fake_torino, or a real device name with IBM Quantum credentials"
    )


class LocalJob:
    """A local job, read from its folder: the same questions a Runtime job answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def job_id(self) -> str:
        return self.folder.name

    def status(self) -> str:
        """QUEUED, RUNNING, DONE, ERROR or CANCELLED; a job whose process died is an ERROR."""
        status = self._state()["status"]
        if status in ("QUEUED", "RUNNING") and not _alive(self._pid()):
            return "ERROR"
        return status

    def error_message(self) -> str:
        return self._state().get("message") or "the local job's process ended without a result"

    def queue_position(self) -> int | None:
        return None  # local jobs never queue

    def result(self):
        from qiskit_ibm_runtime.utils.json import RuntimeDecoder

        return json.loads((self.folder / _RESULT).read_text(), cls=RuntimeDecoder)

    def cancel(self) -> None:
        pid = self._pid()
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
        _write_state(self.folder, "CANCELLED", message="cancelled by the batch")

    def _pid(self) -> int | None:
        """The job process's id, once its submitter or the process itself has written it."""
        try:
            return int((self.folder / _PID).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / _STATUS).read_text())
        except FileNotFoundError as exc:
            raise ArtifactError(f"local Runtime job {self.job_id()} has no status") from exc


def submit_local_job(
    device: str, pubs: list[tuple[QuantumCircuit, None, int]], options: dict[str, Any]
) -> LocalJob:
    """Start a local job in its own session (it survives its submitter) and return it."""
    folder = jobs_root() / f"local-{uuid.uuid4()}"
    folder.mkdir(parents=True)
    with open(folder / _PUBS, "wb") as handle:
        qpy.dump([circuit for circuit, _, _ in pubs], handle)
    request = {"device": device, "shots": [shots for _, _, shots in pubs], "options": options}
    (folder / _REQUEST).write_text(json.dumps(request))
    _write_state(folder, "QUEUED")
    process = subprocess.Popen(  # noqa: S603 (our own module, by the running interpreter)
        [sys.executable, "-m", __name__, str(folder)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "job.log", "wb"),  # noqa: SIM115 (the child owns it)
    )
    _write_pid(folder, process.pid)
    return LocalJob(folder)


def local_job(job_id: str) -> LocalJob:
    folder = jobs_root() / job_id
    if not (folder / _STATUS).exists():
        raise ProviderError(
            f"local Runtime job {job_id} is not in {jobs_root()} (set {JOBS_VARIABLE} to the "
            "folder it was submitted under)"
        )
    return LocalJob(folder)


def _run_job(folder: Path) -> None:
    """The job's own process: run the pubs on the fake device in Runtime Batch mode."""
    from qiskit_ibm_runtime import Batch, SamplerV2
    from qiskit_ibm_runtime.utils.json import RuntimeEncoder

    _write_pid(folder, os.getpid())
    _write_state(folder, "RUNNING")
    request = json.loads((folder / _REQUEST).read_text())
    with open(folder / _PUBS, "rb") as handle:
        circuits = qpy.load(handle)
    pubs = [(c, None, n) for c, n in zip(circuits, request["shots"], strict=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SamplerV2: see docs/ibm-quantum.md
        with Batch(backend=fake_device(request["device"])) as batch:
            result = SamplerV2(mode=batch, options=request["options"]).run(pubs).result()
    temporary = folder / (_RESULT + ".tmp")
    temporary.write_text(json.dumps(result, cls=RuntimeEncoder))
    temporary.replace(folder / _RESULT)
    _write_state(folder, "DONE")


def _write_state(folder: Path, status: str, *, message: str = "") -> None:
    _replace(folder / _STATUS, json.dumps({"status": status, "message": message}))


def _write_pid(folder: Path, pid: int) -> None:
    _replace(folder / _PID, str(pid))


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _alive(pid: int | None) -> bool:
    """Whether the job's process lives; unknown (None) while it is being started."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child of ours that nobody reaped yet is a zombie, not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def main(argv: list[str] | None = None) -> int:
    folder = Path((argv or sys.argv[1:])[0])
    try:
        _run_job(folder)
    except Exception as exc:  # the job's failure is its status, as on the provider's side
        _write_state(folder, "ERROR", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
