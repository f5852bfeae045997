"""The local backend: batches run on this machine, admitted by a queue shared by every run on
the store, under a quota that mirrors a Kueue ClusterQueue."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybrid_provider.backends.base import BackendPlugin
from hybrid_provider.constants import FLAVORS
from hybrid_provider.core.errors import InputError


class LocalConnection(BaseModel):
    """The ``hybrid_quantum`` connection fields the local backend reads."""

    model_config = ConfigDict(extra="forbid")

    quota: dict[str, int] | None = Field(
        default=None,
        alias="local_quota",
        description='Local quota, JSON: {"cpu": 2, "gpu": 1, "qpu": 1}',
    )

    @field_validator("quota", mode="before")
    @classmethod
    def _slots_per_flavor(cls, value: Any) -> dict[str, int] | None:
        """The form gives JSON text; every key a known flavor, every value whole slots."""
        return local_quota(value)


def local_quota(value: Any) -> dict[str, int] | None:
    """The connection's local quota: slots per flavor, typed into the form as JSON."""
    example = '{"cpu": 2, "gpu": 1, "qpu": 1}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(f"local_quota must be JSON such as {example}: {exc}") from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError(
            f"local_quota must be a JSON object of slots per flavor such as {example}, "
            f"got a {type(value).__name__}"
        )
    for flavor, slots in value.items():
        if flavor not in FLAVORS:
            raise InputError(
                f"local_quota names unknown flavor '{flavor}'; use {', '.join(FLAVORS)}"
            )
        if isinstance(slots, bool) or not isinstance(slots, int):
            raise InputError(f"local_quota slots for '{flavor}' must be a whole number such as 2")
        if slots < 0:
            raise InputError(f"local_quota slots for '{flavor}' must be 0 or more")
    return value


PLUGIN = BackendPlugin(
    name="local",
    backend_class="hybrid_provider.backends.local.backend:LocalBackend",
    options=LocalConnection,
    description="this machine: a detached runner and a queue shared by every run on the store",
)
