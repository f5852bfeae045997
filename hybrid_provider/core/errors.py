"""Errors the core raises for bad input; the CLI and the operators show their text as is."""

from __future__ import annotations


class HybridQuantumError(Exception):
    """Base class: the message names the problem and what to do about it."""


class InputError(HybridQuantumError, ValueError):
    """The circuit, observables or options given cannot be used."""


class CutPlanError(HybridQuantumError, ValueError):
    """No cut plan meets the constraints asked for."""


class ArtifactError(HybridQuantumError):
    """An artifact in the store is missing, incomplete or fails its checksum."""


class BackendError(HybridQuantumError):
    """The workflow backend is unknown, unreachable or refused the request."""
