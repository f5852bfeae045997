"""The local backend: batches run on this machine, admitted by a queue shared by every run on
the store, under a quota that mirrors a Kueue ClusterQueue."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybrid_provider.backends.base import BackendPlugin


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
    def _json_text(cls, value: Any) -> Any:
        """The connection form gives text: parse it here, so the error says where it is."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError('must be JSON such as {"cpu": 2, "gpu": 1}') from None
        return value


PLUGIN = BackendPlugin(
    name="local",
    backend_class="hybrid_provider.backends.local.backend:LocalBackend",
    options=LocalConnection,
    description="this machine: a detached runner and a queue shared by every run on the store",
)
