"""The artifact store: every file of a job, addressed by URI through fsspec.

``file://`` on one machine, any fsspec protocol (``s3://``, ``gs://``, ``memory://``) on a
cluster. Writes are atomic where the filesystem allows it (write a temporary name, then
rename), so a reader never sees half a file; object stores make a single PUT atomic anyway.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import PurePosixPath
from typing import Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ValidationError

from hybrid_provider.core.errors import ArtifactError, InputError, one_line

ModelT = TypeVar("ModelT", bound=BaseModel)


def normalise_uri(uri: str | os.PathLike[str]) -> str:
    """Give plain paths a ``file://`` scheme and an absolute path, so URIs survive a ``cd``.

    A plain path is resolved against the working folder, ``..`` included, as a shell would; a
    URI must name its folder directly, because ``..`` in it would reach outside the store.
    """
    if not isinstance(uri, str | os.PathLike):
        raise InputError(
            "a store path or URI must be text (a path, or a URI such as file:///data/hq or "
            f"s3://bucket/prefix), got {type(uri).__name__}"
        )
    text = os.fspath(uri)
    if "://" in text:
        _refuse_dot_segments(text.partition("://")[2], f"URI '{text}'")
        return text.rstrip("/")
    return "file://" + os.path.abspath(text).rstrip("/")


def join(uri: str, *parts: str) -> str:
    """``uri`` extended by relative ``parts``, which may not climb out of it."""
    for part in parts:
        _refuse_dot_segments(part, f"path '{part}' in the store")
    return "/".join([uri.rstrip("/"), *(part.strip("/") for part in parts)])


def _refuse_dot_segments(path: str, what: str) -> None:
    if any(segment in (".", "..") for segment in path.split("/")):
        raise InputError(
            f"the {what} has a '.' or '..' segment, which would reach outside the store; "
            "name the folder directly"
        )


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
    except ValueError as exc:  # not JSON, or not even UTF-8
        raise ArtifactError(f"{what} {uri} is not valid JSON ({exc}); it may be corrupt") from exc


def read_model(uri: str, model: type[ModelT], what: str, fix: str) -> ModelT:
    """A JSON document validated as ``model``; ArtifactError naming ``what`` and ``fix`` when it
    is missing, corrupt or malformed (the problem's fields only, never the values)."""
    payload = read_json(uri, what)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ArtifactError(f"{what} {uri} is malformed ({one_line(exc)}); {fix}") from exc


#: A temporary file whose writer is on another machine counts as abandoned after this long.
FOREIGN_TEMPORARY_TTL_S = 3600.0
_TEMPORARY_MARK = ".tmp-"


def write_bytes_atomic(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    try:
        fs.makedirs(parent, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        _refuse_file_in_the_way(parent)
        raise
    if isinstance(fs, LocalFileSystem):
        remove_abandoned_temporaries(path)
        temporary = (
            f"{path}{_TEMPORARY_MARK}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
        )
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)


def remove_abandoned_temporaries(path: str) -> list[str]:
    """Delete the temporary files of earlier writes of ``path`` whose writer is gone.

    A writer killed between creating its temporary file and renaming it leaves the file behind;
    the next write of the same path (a retried batch, a resumed run, a re-cut) clears it. Another
    writer that is still alive keeps its file: same host and a live pid, or, from another host
    sharing the folder, younger than :data:`FOREIGN_TEMPORARY_TTL_S`.
    """
    removed = []
    for candidate in glob.glob(glob.escape(path) + _TEMPORARY_MARK + "*"):
        if _writer_alive(candidate[len(path) + len(_TEMPORARY_MARK) :], candidate):
            continue
        try:
            os.remove(candidate)
            removed.append(candidate)
        except FileNotFoundError:
            pass  # its writer renamed it, or another cleaner was first
    return removed


def _writer_alive(tag: str, candidate: str) -> bool:
    """Whether the writer named by a temporary file's tag (``host-pid-random``) may still rename it."""
    host, _, pid = tag.rpartition("-")[0].rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        return time.time() - os.path.getmtime(candidate) < FOREIGN_TEMPORARY_TTL_S
    except FileNotFoundError:
        return True


def check_local_root(uri: str) -> str:
    """Refuse a ``file://`` store that lies under a plain file, before anything is written."""
    if uri.startswith("file://"):
        _refuse_file_in_the_way(uri.removeprefix("file://"))
    return uri


def _refuse_file_in_the_way(path: str) -> None:
    for candidate in (path, *(str(p) for p in PurePosixPath(path).parents)):
        if os.path.lexists(candidate):
            if os.path.isdir(candidate):
                return
            raise InputError(
                f"cannot store anything under {path}: {candidate} is a file, not a folder; give "
                "a store path whose every folder is a folder (or does not exist yet)"
            )


def write_json_atomic(uri: str, payload: Any) -> None:
    write_bytes_atomic(uri, json.dumps(payload, indent=2, sort_keys=True).encode())


#: The key under which a sealed JSON document carries the checksum of the rest of it.
SEAL_KEY = "sealed_sha256"


def seal_digest(payload: dict[str, Any]) -> str:
    """sha256 of a document's canonical JSON (sorted keys, no spaces), its seal left out.

    Canonical, so the digest is the same for the writer's dict and for what a reader parses:
    Python's floats, strings and ints survive a JSON round trip exactly.
    """
    body = {key: value for key, value in payload.items() if key != SEAL_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256(canonical.encode())


def write_sealed_json(uri: str, payload: dict[str, Any]) -> None:
    """Write a JSON document that carries its own checksum, so any change to it is detected."""
    write_json_atomic(uri, {**payload, SEAL_KEY: seal_digest(payload)})


def read_sealed_json(uri: str, what: str) -> dict[str, Any]:
    """Read a document written by :func:`write_sealed_json`, refusing it if it was changed."""
    return unseal(read_json(uri, what), uri, what)


def unseal(payload: Any, uri: str, what: str) -> dict[str, Any]:
    """The document without its seal, once the seal matches its content."""
    if not isinstance(payload, dict) or not isinstance(payload.get(SEAL_KEY), str):
        raise ArtifactError(
            f"{what} {uri} carries no checksum; it is corrupt or was not written by this "
            "release. Re-run the step that wrote it"
        )
    try:
        digest = seal_digest(payload)
    except ValueError as exc:  # NaN or infinity where the writer put numbers
        raise ArtifactError(f"{what} {uri} holds a value JSON cannot carry ({exc})") from exc
    if digest != payload[SEAL_KEY]:
        raise ArtifactError(
            f"{what} {uri} fails its own checksum: it was changed after it was written. Re-run "
            "the step that wrote it"
        )
    return {key: value for key, value in payload.items() if key != SEAL_KEY}


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
