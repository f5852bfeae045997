"""Validate Kubernetes custom objects against upstream CRD schemas, strictly.

The reference CRDs are upstream's own, from the Argo Workflows and Kueue module versions the
real-engine suite builds and installs (``tests/controlplane/engines.py``, fetched with
``go mod download``): nothing is copied into the repository, and what is validated here is what
the real API server is given. Without Go the tests that need them are skipped. Typical use::

    from schema_validation import validate_against_crd, crd_path

    validate_against_crd(workflow_dict, crd_path("argo/argoproj.io_workflows.yaml"))
    validate_object(workflow_dict)  # finds the CRD by apiVersion and kind

Why "strictly": the API server prunes fields a structural schema does not declare, so a
misspelt field (``cohort`` for ``cohortName``, ``nominalQouta``) is silently dropped on a
real cluster and ``kubectl apply`` still succeeds. Here such a field is an error: every
object schema that declares ``properties`` (and is not marked
``x-kubernetes-preserve-unknown-fields``) rejects keys it does not declare. Other
``x-kubernetes-*`` keys are annotations (CEL rules, list types) and are not evaluated;
``nullable`` is honoured. ``metadata`` is checked against a small ObjectMeta schema.

A CRD file is read and converted once per path (cached); the module works for any CRD file.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_CONTROLPLANE = str(Path(__file__).resolve().parent / "controlplane")
if _CONTROLPLANE not in sys.path:
    sys.path.append(_CONTROLPLANE)

import engines  # noqa: E402

# The Argo CRDs are ~3 MB of YAML: libyaml reads them ~7x faster than pure Python.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

#: The ObjectMeta fields a manifest may set (read-only server fields left out on purpose).
OBJECT_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": _DNS_SUBDOMAIN, "maxLength": 253},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
    },
}


class CRDValidationError(ValueError):
    """An object does not match its CRD schema. ``errors`` holds ``(path, message)`` pairs."""

    def __init__(self, what: str, crd_path: Path, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "\n".join(f"  {path or '<root>'}: {message}" for path, message in errors)
        super().__init__(f"{what} does not match {crd_path.name}:\n{lines}")


def crd_folders() -> dict[str, Path]:
    """``argo`` and ``kueue``: the CRD folders of the pinned modules (the test is skipped, with
    the reason, where they cannot be had)."""
    try:
        return _crd_folders()
    except engines.EngineUnavailable as exc:
        import pytest

        pytest.skip(f"upstream CRDs unavailable: {exc}")


@functools.cache
def _crd_folders() -> dict[str, Path]:
    return {
        "argo": engines.module_dir(engines.ARGO) / "manifests/base/crds/full",
        "kueue": engines.module_dir(engines.KUEUE) / "config/components/crd/bases",
    }


def crd_path(relative: str) -> Path:
    """A CRD file by upstream name, e.g. ``kueue/kueue.x-k8s.io_workloads.yaml``."""
    folder, _, name = relative.partition("/")
    return crd_folders()[folder] / name


def format_path(parts: Iterable[Any]) -> str:
    """``['spec', 'templates', 0, 'name']`` -> ``spec.templates[0].name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Copy an openAPIV3Schema, closing every structural object schema to unknown keys."""
    return _close(copy.deepcopy(dict(schema)), in_combinator=False)


def _close(node: Any, in_combinator: bool) -> Any:
    if isinstance(node, list):
        return [_close(item, in_combinator) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    for key, value in list(node.items()):
        if key == "properties" and isinstance(value, dict):
            node[key] = {name: _close(sub, in_combinator) for name, sub in value.items()}
        elif key in ("anyOf", "allOf", "oneOf", "not"):
            # Value validations in a structural schema: they never declare fields of their own.
            node[key] = _close(value, in_combinator=True)
        elif key in ("items", "additionalProperties") and isinstance(value, (dict, list)):
            node[key] = _close(value, in_combinator)
    if (
        not in_combinator
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and not node.get("x-kubernetes-embedded-resource")
    ):
        node["additionalProperties"] = False
    return node


@functools.cache
def _load_crd(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        crd = yaml.load(handle, Loader=_YAML_LOADER)  # noqa: S506 (safe loader)
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path} is not a CustomResourceDefinition")
    return crd


@functools.cache
def _validator(path: str, version: str) -> jsonschema.protocols.Validator:
    crd = _load_crd(path)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema = strict_schema(entry["schema"]["openAPIV3Schema"])
            break
    else:
        served = [entry["name"] for entry in crd["spec"]["versions"]]
        raise CRDValidationError(
            "object", Path(path), [("apiVersion", f"version {version!r} not in CRD ({served})")]
        )
    schema.setdefault("properties", {})["metadata"] = OBJECT_META_SCHEMA
    schema.setdefault("required", [])
    for key in ("apiVersion", "kind", "metadata"):
        if key not in schema["required"]:
            schema["required"].append(key)
    # OpenAPI v3 schemas are closest to draft 4 (boolean exclusiveMinimum, no $defs).
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def validate_against_crd(obj: Mapping[str, Any], crd_path: str | os.PathLike[str]) -> None:
    """Validate ``obj`` (a manifest dict) against the CRD at ``crd_path``.

    The version is taken from ``obj['apiVersion']``; group and kind must match the CRD.
    Raises :class:`CRDValidationError` listing every bad field by path.
    """
    path = Path(crd_path).resolve()
    crd = _load_crd(str(path))
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    kind = obj.get("kind")
    name = (obj.get("metadata") or {}).get("name", "?")
    what = f"{kind}/{name}"
    expected_kind = crd["spec"]["names"]["kind"]
    if group != crd["spec"]["group"] or kind != expected_kind:
        raise CRDValidationError(
            what,
            path,
            [
                (
                    "apiVersion/kind",
                    f"{obj.get('apiVersion')} {kind} is not {crd['spec']['group']} {expected_kind}",
                )
            ],
        )
    validator = _validator(str(path), version)
    errors = sorted(validator.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise CRDValidationError(
            what, path, [(format_path(e.absolute_path), _message(e)) for e in errors]
        )


def _message(error: jsonschema.ValidationError) -> str:
    if error.context:  # anyOf/oneOf: the closest branch says most
        best = jsonschema.exceptions.best_match(error.context)
        return f"{error.message} ({format_path(best.absolute_path)}: {best.message})"
    return error.message


@functools.cache
def _crd_index(directories: tuple[str, ...]) -> dict[tuple[str, str], Path]:
    index: dict[tuple[str, str], Path] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.yaml")):
            try:
                crd = _load_crd(str(path))
            except (ValueError, yaml.YAMLError):
                continue
            index[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = path
    return index


def find_crd(api_version: str, kind: str) -> Path | None:
    """The upstream CRD file defining ``kind`` in ``api_version``'s group."""
    group = api_version.rpartition("/")[0]
    folders = tuple(str(p) for p in crd_folders().values())
    return _crd_index(folders).get((group, kind))


def validate_object(obj: Mapping[str, Any]) -> Path:
    """Validate ``obj`` against whichever CRD under the schema dir defines it; return that path."""
    path = find_crd(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if path is None:
        raise LookupError(f"no upstream CRD for {obj.get('apiVersion')} {obj.get('kind')}")
    validate_against_crd(obj, path)
    return path
