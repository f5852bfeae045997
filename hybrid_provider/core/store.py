"""The artifact store: every file of a job, addressed by URI through fsspec.

``file://`` on one machine, any fsspec protocol (``s3://``, ``gs://``, ``memory://``) on a
cluster. Writes are atomic where the filesystem allows it (write a temporary name, then
rename), so a reader never sees half a file; object stores make a single PUT atomic anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from hybrid_provider.core.errors import ArtifactError, InputError


def normalise_uri(uri: str | os.PathLike[str]) -> str:
    """Give plain paths a ``file://`` scheme and an absolute path, so URIs survive a ``cd``."""
    text = os.fspath(uri)
    if "://" in text:
        return text.rstrip("/")
    return "file://" + os.path.abspath(text).rstrip("/")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


#: Storage options reach pods as environment variables: ``HYBRID_QUANTUM_STORE_<option>``
#: (the chart maps each key of the store Secret to one).
STORE_OPTION_PREFIX = "HYBRID_QUANTUM_STORE_"


def storage_options_from_environment() -> dict[str, str]:
    """fsspec storage options (e.g. ``key``, ``secret``, ``endpoint_url``) set by the pod's env."""
    return {
        name.removeprefix(STORE_OPTION_PREFIX): value
        for name, value in os.environ.items()
        if name.startswith(STORE_OPTION_PREFIX)
    }


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    options = {} if uri.startswith("file://") else storage_options_from_environment()
    try:
        return fsspec.core.url_to_fs(uri, **options)
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"cannot open store URI '{uri}': {exc}. Use file:///path or install the fsspec "
            "implementation for its protocol (e.g. s3fs for s3://)"
        ) from exc


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def read_bytes(uri: str, what: str = "artifact") -> bytes:
    fs, path = filesystem(normalise_uri(uri))
    try:
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{what} not found: {uri}") from exc
    except (IsADirectoryError, PermissionError) as exc:
        raise ArtifactError(f"cannot read {what} {uri}: {exc}") from exc


def read_json(uri: str, what: str = "artifact") -> Any:
    data = read_bytes(uri, what)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{what} {uri} is not valid JSON ({exc}); it may be corrupt") from exc


def write_bytes_atomic(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)


def write_json_atomic(uri: str, payload: Any) -> None:
    write_bytes_atomic(uri, json.dumps(payload, indent=2, sort_keys=True).encode())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(uri: str, expected_sha256: str, what: str) -> bytes:
    """Read an artifact and refuse it when its checksum differs from the recorded one."""
    data = read_bytes(uri, what)
    actual = sha256(data)
    if actual != expected_sha256:
        raise ArtifactError(
            f"{what} {uri} fails its checksum (sha256 {actual[:12]}…, manifest says "
            f"{expected_sha256[:12]}…): it was changed after it was written. Re-run the step "
            "that wrote it"
        )
    return data
