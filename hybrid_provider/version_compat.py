"""Everything that differs between the Airflow releases we support, in one place.

The supported range is declared in ``pyproject.toml`` and explained in the README ("Supported
versions"); ``make test-lowest`` runs the fast suite and the example DAG at its lower bounds,
``make test`` at the newest releases. Code elsewhere imports the newest API directly and comes
here only when an older supported release spells it differently, so that raising the minimum
Airflow later means deleting from this module, not searching the package.

Imported lazily by its callers where the API it wraps is itself heavy (the API server's
security module), so that workers and the scheduler do not pay for it.
"""

from __future__ import annotations

from typing import Any


async def signed_in_user(request: Any, bearer_credentials: Any) -> Any:
    """The signed-in Airflow user of a request (bearer token, else the UI's session cookie).

    Airflow's ``get_user`` dependency renamed its OAuth-token parameter from ``oauth_token``
    (3.2.x, 3.3.0, 3.3.1) to ``_oauth_token`` (3.3.2) within a patch release; passing it by
    position works with both spellings. Raises what ``get_user`` raises (401 without a user).
    """
    from airflow.api_fastapi.core_api.security import get_user

    no_oauth_token = None  # the plugin authenticates with the bearer scheme or the cookie
    return await get_user(request, no_oauth_token, bearer_credentials=bearer_credentials)
