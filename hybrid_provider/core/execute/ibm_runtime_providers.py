"""Where a batch's Runtime jobs go: a real IBM Quantum account, or local testing mode.

Both answer the same questions (:class:`Provider`, :class:`ProviderJob`), so the batch's flow in
:mod:`.ibm_runtime` is one. Credentials come from ``QISKIT_IBM_TOKEN``, ``QISKIT_IBM_CHANNEL``
and ``QISKIT_IBM_INSTANCE`` (or the account saved on disk) and never reach an error message.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any, Protocol

from hybrid_provider.core.errors import ArtifactError, BackendError, InputError, ProviderError
from hybrid_provider.core.execute.runtime_options import (
    CHANNEL_VARIABLE,
    DEFAULT_CHANNEL,
    INSTANCE_VARIABLE,
    PREFIX,
    TOKEN_VARIABLE,
    device_name,
    is_local,
)

#: Seconds between two status questions to the provider (local jobs are asked more often).
POLL_SECONDS = float(os.environ.get("HYBRID_QUANTUM_IBM_POLL_S", "10"))
LOCAL_POLL_SECONDS = 0.2


class ProviderJob(Protocol):
    """What a batch asks of one provider job, real (``RuntimeJobV2``) or local."""

    def job_id(self) -> str: ...
    def status(self) -> str: ...
    def error_message(self) -> str: ...
    def queue_position(self) -> int | None: ...
    def result(self) -> Any: ...
    def cancel(self) -> None: ...


class Provider(Protocol):
    """Where jobs go: ``backend`` is the device (its target makes the ISA circuits)."""

    name: str
    backend: Any
    poll_seconds: float

    def batch(self) -> contextlib.AbstractContextManager[Any]: ...
    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob: ...
    def job(self, job_id: str) -> ProviderJob: ...


class _CloudJob:
    """A Runtime job on IBM's servers, answering in the provider's own words."""

    def __init__(self, job: Any) -> None:
        self._job = job

    def job_id(self) -> str:
        return self._job.job_id()

    def status(self) -> str:
        status = self._job.status()
        return str(getattr(status, "name", status))

    def error_message(self) -> str:
        return self._job.error_message() or "no message from the provider"

    def queue_position(self) -> int | None:
        try:
            position = self._job.metrics().get("position_in_queue")
        except Exception:  # metrics are a courtesy: the job is still there without them
            return None
        return int(position) if position is not None else None

    def result(self) -> Any:
        return self._job.result()

    def cancel(self) -> None:
        self._job.cancel()


class CloudProvider:
    """A real IBM Quantum account: jobs run and wait on IBM's servers."""

    name = PREFIX
    poll_seconds = POLL_SECONDS

    def __init__(self, device: str | None) -> None:
        self.service = _service()
        with credentials_hidden():
            self.backend = (
                self.service.backend(device)
                if device
                else self.service.least_busy(operational=True, simulator=False)
            )

    @contextlib.contextmanager
    def batch(self) -> Iterator[Any]:
        from qiskit_ibm_runtime import Batch

        with credentials_hidden():
            mode = Batch(backend=self.backend)
        with mode:
            yield mode

    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob:
        with credentials_hidden():
            return _CloudJob(_sampler(mode, options).run(pubs))

    def job(self, job_id: str) -> ProviderJob:
        with credentials_hidden():
            return _CloudJob(self.service.job(job_id))


class LocalProvider:
    """Local testing mode on a fake device; each job in a detached process (see the module)."""

    name = f"{PREFIX}-local"
    poll_seconds = LOCAL_POLL_SECONDS

    def __init__(self, device: str) -> None:
        from hybrid_provider.core.execute.ibm_runtime_local import fake_device

        self.device = device
        self.backend = fake_device(device)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Any]:
        from qiskit_ibm_runtime import Batch

        with Batch(backend=self.backend) as mode:  # local mode: a Batch without a server id
            yield mode

    def submit(self, mode: Any, pubs: list, options: dict[str, Any]) -> ProviderJob:
        from hybrid_provider.core.execute.ibm_runtime_local import submit_local_job

        return submit_local_job(self.device, pubs, options)

    def job(self, job_id: str) -> ProviderJob:
        from hybrid_provider.core.execute.ibm_runtime_local import local_job

        return local_job(job_id)


def open_provider(sampler: str) -> Provider:
    device = device_name(sampler)
    if device and is_local(sampler):
        return LocalProvider(device)
    return CloudProvider(device)


def _sampler(mode: Any, options: dict[str, Any]):
    from qiskit_ibm_runtime import SamplerV2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see docs/ibm-quantum.md
        return SamplerV2(mode=mode, options=options)


def _service():
    """The account, from the ``QISKIT_IBM_*`` variables or else the account saved on disk."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    settings = {
        "channel": os.environ.get(CHANNEL_VARIABLE) or DEFAULT_CHANNEL,
        "token": os.environ.get(TOKEN_VARIABLE) or None,
        "instance": os.environ.get(INSTANCE_VARIABLE) or None,
    }
    with credentials_hidden():
        return QiskitRuntimeService(**{k: v for k, v in settings.items() if v})


@contextlib.contextmanager
def credentials_hidden() -> Iterator[None]:
    """Turn the client's errors into one line that cannot hold the token.

    A refused account or request is bad input (not retried); anything else may be the network
    and is retried, and a retry reattaches to the batch's jobs.
    """
    try:
        yield
    except (InputError, ArtifactError, ProviderError):
        raise
    except Exception as exc:
        token = os.environ.get(TOKEN_VARIABLE) or ""
        what = f"{type(exc).__name__}: {str(exc).replace(token, '***') if token else exc}"
        if type(exc).__name__ in _REFUSED_ACCOUNT:
            raise InputError(
                f"IBM Quantum refused the account ({what}); check the ibm_runtime connection's "
                "channel, instance and token (docs/ibm-quantum.md)"
            ) from None
        if type(exc).__name__ in _REFUSED_REQUEST:
            raise InputError(f"IBM Quantum refused the request ({what})") from None
        if type(exc).__name__ == "RuntimeJobNotFound":
            raise ProviderError(f"IBM Quantum has no such job ({what})") from None
        raise BackendError(
            f"IBM Quantum did not answer ({what}); the batch is retried and reattaches to its jobs"
        ) from None


#: The client's errors for an account or a request it refuses (matched by name: the classes
#: move between qiskit-ibm-runtime releases). ``InvalidAccountError`` is left out: the client
#: also raises it when the network is down.
_REFUSED_ACCOUNT = frozenset({"IBMNotAuthorizedError", "AccountNotFoundError"})
_REFUSED_REQUEST = frozenset({"IBMInputValueError", "IBMBackendValueError", "ValidationError"})
