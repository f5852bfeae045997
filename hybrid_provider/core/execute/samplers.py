"""Run subexperiments on any SamplerV2: Aer's, IBM Runtime's, or one built from a device backend.

A sampler is named by an import path ``module:attribute`` (so pods and the CLI can ask for one
by name); the attribute may be a SamplerV2, a BackendV2 (wrapped in ``BackendSamplerV2`` after
transpiling to it), or a class/factory returning either.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.options import AER_SAMPLER, check_sampler_name
from hybrid_provider.core.execute.outcomes import OBSERVABLE_REGISTER, QPD_REGISTER
from hybrid_provider.core.execute.runtime_options import IBM_RUNTIME_SAMPLER


def resolve_sampler(name: str):
    """``aer-sampler`` is Aer's SamplerV2 (shot by shot); anything else is ``module:attribute``.

    Raises:
        InputError: the name does not import, or names something that is not a sampler.
    """
    if name == AER_SAMPLER:
        from qiskit_aer.primitives import SamplerV2

        return SamplerV2()
    if IBM_RUNTIME_SAMPLER.fullmatch(name):  # the device; batches run it through ibm_runtime
        from hybrid_provider.core.execute.ibm_runtime import open_provider

        return open_provider(name).backend
    check_sampler_name(name)
    module_name, _, attribute = name.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot import sampler '{name}': {exc}") from exc
    if inspect.isclass(target) or (callable(target) and not hasattr(target, "run")):
        try:
            target = target()  # a class or factory: build the sampler or backend
        except TypeError as exc:  # it needs arguments: not a factory we can call
            raise InputError(f"cannot build sampler '{name}' without arguments: {exc}") from exc
    if not isinstance(target, BackendV2) and not callable(getattr(target, "run", None)):
        raise InputError(
            f"'{name}' is not a SamplerV2 or a backend (it gives a {type(target).__name__}); "
            "name a SamplerV2, a BackendV2, or a class or function returning one"
        )
    return target


def run_on_sampler(
    sampler, circuits: list[QuantumCircuit], shots: int | Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run the circuits in one job; returns (packed outcome values, counts) per circuit.

    ``shots`` is one count for all circuits, or one per circuit (each pub then carries its own).
    """
    if isinstance(sampler, BackendV2):
        sampler, circuits = _sampler_for_backend(sampler, circuits)
    if isinstance(shots, int | np.integer):
        result = sampler.run([(circuit,) for circuit in circuits], shots=int(shots)).result()
    elif len(set(shots)) == 1:
        result = sampler.run([(circuit,) for circuit in circuits], shots=int(shots[0])).result()
    else:
        pubs = [(circuit, None, int(n)) for circuit, n in zip(circuits, shots, strict=True)]
        result = sampler.run(pubs).result()
    return distributions_of(result)


def distributions_of(result) -> list[tuple[np.ndarray, np.ndarray]]:
    """(packed outcome values, counts) of each pub of a SamplerV2 result."""
    distributions = []
    for pub_result in result:
        observable = _as_integers(pub_result.data[OBSERVABLE_REGISTER])
        qpd = _as_integers(pub_result.data[QPD_REGISTER])
        width = pub_result.data[OBSERVABLE_REGISTER].num_bits
        packed = observable | (qpd << np.uint64(width))
        values, counts = np.unique(packed, return_counts=True)
        distributions.append((values, counts.astype(np.float64)))
    return distributions


def _sampler_for_backend(backend: BackendV2, circuits: list[QuantumCircuit]):
    from qiskit.primitives import BackendSamplerV2
    from qiskit.transpiler import generate_preset_pass_manager

    pass_manager = generate_preset_pass_manager(optimization_level=1, backend=backend)
    return BackendSamplerV2(backend=backend), pass_manager.run(circuits)


def _as_integers(bits) -> np.ndarray:
    """A BitArray's shots as integers (bytes are big-endian, as Qiskit stores them)."""
    array = bits.array.reshape(-1, bits.array.shape[-1]).astype(np.uint64)
    weights = np.uint64(256) ** np.arange(array.shape[1] - 1, -1, -1, dtype=np.uint64)
    return (array * weights).sum(axis=1, dtype=np.uint64)
