"""Exact factors of every term choice of a subcircuit from a few simulations: Pauli paths.

A subcircuit's term choices differ only at its cuts, where each term applies a few one-qubit
gates to the cut qubit, perhaps around a measurement whose sign (not outcome) the
reconstruction reads. Both are linear in the Paulis on that qubit: a term's gates ``B`` are
``Σ b_p P_p``, and a signed measurement between ``L1`` and ``L2`` maps ``ρ`` to
``(K ρ B† + B ρ K†) / 2`` with ``B = L2 L1`` and ``K = L2 Z L1``. So every choice's state is a
combination of the *Pauli-path* states ``φ_p = S_k P_pk … S_1 P_p1 S_0 |0>`` (``S_i`` the gates
between two cuts), and every choice's mean of an observable ``O`` is
``Σ_{p,q} Π_i W_i[p_i, q_i] <φ_p|O|φ_q>`` with ``W_i[p, q] = conj(b_p) b_q`` (or the
measurement's average of ``conj(b_p) k_q`` and ``conj(k_p) b_q``). A cut CX's five local terms
use two Paulis per side, so three cuts need 2 + 4 + 8 segment simulations instead of 125 whole
circuits, no ancilla qubits, and one small Gram matrix per observable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import Gate
from qiskit.quantum_info import Operator, Pauli

#: The Pauli-path states are all held at once; beyond this many bytes the choices are
#: simulated one circuit each instead.
MAX_PATH_BYTES = 2 * 2**30
_PAULIS = ("I", "X", "Y", "Z")
_Z = np.diag([1.0, -1.0]).astype(complex)

#: Runs gates (program steps) on a state (None: |0…0>) and returns the state they end in.
Simulate = Callable[[np.ndarray | None, Sequence[tuple[str, Any]]], np.ndarray]


def pauli_path_means(
    width: int,
    steps: Sequence[tuple[str, Any]],
    terms: np.ndarray,
    labels: Sequence[str],
    simulate: Simulate,
) -> np.ndarray | None:
    """Means (choices x labels) of the choices ``terms`` (one column per cut, in circuit
    order); None when the method does not apply: a non-unitary gate outside the cuts, a term
    that does more than one-qubit gates around one measurement, or too many path states."""
    before, cuts = _split(steps)
    if cuts is None or len(cuts) != terms.shape[1]:
        return None
    weights = []
    for (gate, qubit, _), column in zip(cuts, terms.T, strict=True):
        slot = _slot_weights(gate, np.unique(column))
        if slot is None:
            return None
        weights.append((qubit, *slot))
    paths = math.prod(len(support) for _, support, _ in weights)
    if paths * 2**width * 16 * 2 > MAX_PATH_BYTES:
        return None
    states = [simulate(None, before)]
    for (qubit, support, _), (_, _, rest) in zip(weights, cuts, strict=True):
        states = [
            simulate(_pauli_on_qubit(state, _PAULIS[p], qubit, width), rest)
            for state in states
            for p in support
        ]
    stacked = np.stack(states, axis=1)
    del states
    bras = stacked.conj().T
    means = np.empty((len(terms), len(labels)))
    for o, label in enumerate(labels):
        letters = {q: label[len(label) - 1 - q] for q in range(width)}
        gram = bras @ _apply_pauli(stacked, letters, width)
        for row, choice in enumerate(terms):
            combined = np.ones((1, 1), dtype=complex)
            for (_, _, per_term), term in zip(weights, choice, strict=True):
                combined = np.kron(combined, per_term[int(term)])
            means[row, o] = float(np.real(np.sum(combined * gram)))
    return means


def _split(steps) -> tuple[list, list | None]:
    """The steps before the first cut, and per cut (gate, its qubit, the steps after it up to
    the next cut); cuts None when a step outside the cuts is not a unitary gate."""
    before: list = []
    cuts: list[tuple[Any, int, list]] = []
    for kind, step in steps:
        if kind == "qpd":
            _, gate, qubits = step
            cuts.append((gate, qubits[0], []))
            continue
        operation = step[0] if kind == "gate" else step
        if not isinstance(operation, Gate) or operation.name in ("measure", "reset"):
            return before, None
        (cuts[-1][2] if cuts else before).append((kind, step))
    return before, cuts


def _slot_weights(gate, used) -> tuple[list[int], dict[int, np.ndarray]] | None:
    """The Paulis the cut's used terms are made of, and each term's ``W`` over them."""
    sides = {}
    for term in used:
        side = _bra_and_ket(gate.basis.maps[int(term)][gate.qubit_id])
        if side is None:
            return None
        sides[int(term)] = side
    expansions = {t: [_expansion(m) for m in pair] for t, (*pair, _) in sides.items()}
    support = sorted(
        {int(p) for pair in expansions.values() for e in pair for p in np.flatnonzero(e)}
    )
    per_term = {}
    for term, (bra, ket) in expansions.items():
        b, k = bra[support], ket[support]
        if sides[term][2]:  # measured: the average of the Z on the ket and on the bra
            per_term[term] = (np.outer(b.conj(), k) + np.outer(k.conj(), b)) / 2
        else:
            per_term[term] = np.outer(b.conj(), b)
    return support, per_term


def _bra_and_ket(local) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """``(B, K, measured)`` of a term's local operations on its qubit."""
    before, after, measured = np.eye(2, dtype=complex), np.eye(2, dtype=complex), False
    for operation in local:
        if operation.name == "qpd_measure" and not measured:
            measured = True
        elif isinstance(operation, Gate) and operation.num_qubits == 1:
            matrix = Operator(operation).data
            if measured:
                after = matrix @ after
            else:
                before = matrix @ before
        else:
            return None
    return after @ before, after @ (_Z if measured else np.eye(2)) @ before, measured


def _expansion(matrix: np.ndarray) -> np.ndarray:
    """The coefficients of a 2x2 matrix in the Pauli basis (I, X, Y, Z), tiny ones zeroed."""
    coefficients = np.array(
        [np.trace(Pauli(name).to_matrix().conj().T @ matrix) / 2 for name in _PAULIS]
    )
    coefficients[np.abs(coefficients) < 1e-12] = 0
    return coefficients


def _pauli_on_qubit(state: np.ndarray, letter: str, qubit: int, width: int) -> np.ndarray:
    """One Pauli on one qubit of a state, by slicing (the general case costs a permutation)."""
    if letter == "I":
        return state
    view = state.reshape(2 ** (width - 1 - qubit), 2, 2**qubit)
    zero, one = view[:, 0], view[:, 1]
    if letter == "X":
        return np.stack([one, zero], axis=1).reshape(-1)
    if letter == "Y":
        return np.stack([-1j * one, 1j * zero], axis=1).reshape(-1)
    return np.stack([zero, -one], axis=1).reshape(-1)


def _apply_pauli(states: np.ndarray, letters: dict[int, str], width: int) -> np.ndarray:
    """``P`` applied to a state (or to each column of a stack of them): per qubit Y = iXZ,
    so ``(P ψ)_i = i^(number of Y) (-1)^|(i ^ x) & z| ψ_(i ^ x)``."""
    x = sum(1 << q for q, letter in letters.items() if letter in "XY")
    z = sum(1 << q for q, letter in letters.items() if letter in "ZY")
    source = np.arange(2**width, dtype=np.uint64)
    if x:
        source ^= np.uint64(x)
    signs = 1.0 - 2.0 * (np.bitwise_count(source & np.uint64(z)) & 1)
    moved = states[source] if x else states
    result = moved * (signs[:, None] if states.ndim == 2 else signs)
    phase = 1j ** sum(letter == "Y" for letter in letters.values())
    return result * phase if phase != 1 else result
