"""A small REST client for the control plane's own plumbing (installing CRDs, the node agent).

The product talks to clusters through cncf-kubernetes' hooks; this client is for the test
machinery only, where a few verbs over ``requests`` with the admin certificate are clearer than
a generated client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests

Obj = dict[str, Any]

#: Kinds the control plane applies itself -> (plural, namespaced).
KINDS = {
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
    "APIService": ("apiservices", False),
    "Namespace": ("namespaces", False),
    "Node": ("nodes", False),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "Lease": ("leases", True),
}


class ApiError(RuntimeError):
    def __init__(self, status: int, text: str):
        self.status = status
        super().__init__(f"{status}: {text[:500]}")


def object_path(api_version: str, kind: str, namespace: str | None = None, name: str = "") -> str:
    plural, namespaced = KINDS[kind]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        base += f"/namespaces/{namespace or 'default'}"
    return f"{base}/{plural}/{name}" if name else f"{base}/{plural}"


class KubeApi:
    """Admin access to one API server over HTTPS with client certificates."""

    def __init__(self, server: str, ca: str, cert: str, key: str):
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        self.session.verify = ca
        self.session.cert = (cert, key)

    def call(self, method: str, path: str, body: Any = None, *, ok404: bool = False,
             content_type: str = "application/json", **params: Any) -> Obj | None:  # fmt: skip
        response = self.session.request(
            method,
            self.server + path,
            params=params or None,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": content_type},
            timeout=30,
        )
        if response.status_code == 404 and ok404:
            return None
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text)
        return response.json() if response.content else {}

    def healthy(self, path: str = "/readyz") -> bool:
        response = self.session.get(self.server + path, timeout=10)
        return response.status_code == 200

    def get(self, path: str, **params: Any) -> Obj | None:
        return self.call("GET", path, ok404=True, **params)

    def patch_merge(self, path: str, patch: Obj) -> Obj | None:
        return self.call("PATCH", path, patch, content_type="application/merge-patch+json")

    def apply(self, obj: Obj) -> Obj:
        """Create ``obj``, or replace the object of that name (keeping its resourceVersion)."""
        meta = obj["metadata"]
        collection = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        try:
            return self.call("POST", collection, obj) or {}
        except ApiError as exc:
            if exc.status != 409:
                raise
        path = f"{collection}/{meta['name']}"
        current = self.get(path) or {}
        replaced = {**obj, "metadata": {**meta, "resourceVersion":
                    current.get("metadata", {}).get("resourceVersion")}}  # fmt: skip
        return self.call("PUT", path, replaced) or {}

    def watch(self, path: str, resource_version: str, timeout: int = 60) -> Iterator[Obj]:
        """Events of a watch until the server closes it (then list again and resume)."""
        with self.session.get(
            self.server + path,
            params={
                "watch": "1",
                "resourceVersion": resource_version,
                "timeoutSeconds": str(timeout),
                "allowWatchBookmarks": "true",
            },  # fmt: skip
            stream=True,
            timeout=timeout + 10,
        ) as response:
            if response.status_code >= 400:
                raise ApiError(response.status_code, response.text)
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)
