"""The real Kubernetes control plane, Kueue and Argo, built from pinned upstream Go modules.

Every version the real-engine suite runs is written here, once (``PINS``). Nothing upstream is
copied into the repository: the Go module proxy delivers the sources, ``go build`` makes the
binaries, and the CRDs and default configuration are read from the same module versions
(``module_dir``). Binaries are cached per pin set under ``~/.cache/hybrid-quantum/engines``
(``$HYBRID_ENGINES_CACHE`` overrides), so only the first build on a machine pays for it.

``python tests/controlplane/engines.py`` builds (or finds) everything and prints the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

#: The upstream versions the real-engine suite builds and runs (newest the proxy served).
PINS = {
    "k8s.io/kubernetes": "v1.37.2",
    "go.etcd.io/etcd/server/v3": "v3.7.3",
    "sigs.k8s.io/kueue": "v0.19.2",
    "github.com/argoproj/argo-workflows/v4": "v4.0.7",
}
KUBERNETES, ETCD, KUEUE, ARGO = PINS


@dataclass(frozen=True)
class Component:
    """One Go module built into one or more binaries."""

    name: str
    module: str
    packages: tuple[str, ...]
    main_source: str = ""  # a wrapper main package, for modules without one of their own
    #: Go variables that upstream's own build stamps with the version (clients parse it:
    #: Kueue refuses an API server that reports the module default "v0.0.0-master").
    version_variables: tuple[str, ...] = ()
    #: Symbolic links upstream's repository has and its module zip lacks (Go drops them):
    #: (path in the module, link target). The module is then built from a copy with them.
    symlinks: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        return PINS[self.module]

    def ldflags(self) -> str:
        stamps = [f"-X {variable}={self.version}" for variable in self.version_variables]
        if self.module == KUBERNETES:
            major, minor = self.version.removeprefix("v").split(".")[:2]
            for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
                stamps += [f"-X {package}.gitMajor={major}", f"-X {package}.gitMinor={minor}",
                           f"-X {package}.gitTreeState=clean"]  # fmt: skip
        return " ".join(["-s", "-w", *stamps])


COMPONENTS = (
    Component(
        "etcd",
        ETCD,
        (".",),
        main_source=(
            'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
            "func main() { etcdmain.Main(os.Args) }\n"
        ),
    ),
    Component(
        "kubernetes",
        KUBERNETES,
        tuple(
            f"k8s.io/kubernetes/cmd/{name}"
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        ),
        version_variables=(
            "k8s.io/component-base/version.gitVersion",
            "k8s.io/client-go/pkg/version.gitVersion",
        ),
    ),
    Component(
        "kueue",
        KUEUE,
        ("sigs.k8s.io/kueue/cmd/kueue",),
        version_variables=("sigs.k8s.io/kueue/pkg/version.GitVersion",),
    ),
    Component(
        "argo",
        ARGO,
        tuple(
            f"github.com/argoproj/argo-workflows/v4/cmd/{name}"
            for name in ("workflow-controller", "argoexec")
        ),
        version_variables=("github.com/argoproj/argo-workflows/v4.version",),
        # argoexec's Linux signal handling is a link to the Darwin file in Argo's repository.
        symlinks=(("workflow/executor/osspecific/signal_linux.go", "signal_darwin.go"),),
    ),
)
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kueue",
    "workflow-controller",
    "argoexec",
)


class EngineUnavailable(RuntimeError):
    """The engines cannot be had on this machine (no Go, or the module proxy said no)."""


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise EngineUnavailable("Go is not installed (the real-engine suite builds with Go)")
    return go


def cache_root() -> Path:
    configured = os.environ.get("HYBRID_ENGINES_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hybrid-quantum" / "engines"


def pins_key() -> str:
    return hashlib.sha256(json.dumps(PINS, sort_keys=True).encode()).hexdigest()[:12]


def bin_dir() -> Path:
    return cache_root() / pins_key() / "bin"


def _go(args: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(
        [go_binary(), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise EngineUnavailable(f"go {' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@cache
def _download(module: str) -> dict[str, str]:
    """``go mod download -json`` of a pinned module: where its source and go.mod are."""
    info = json.loads(_go(["mod", "download", "-json", f"{module}@{PINS[module]}"]))
    if info.get("Error"):
        raise EngineUnavailable(f"{module}@{PINS[module]}: {info['Error']}")
    return info


def module_dir(module: str) -> Path:
    """The unpacked source of a pinned module, for CRDs and default configuration."""
    return Path(_download(module)["Dir"])


def _staging_replacements() -> list[str]:
    """k8s.io/kubernetes lists its staging modules at v0.0.0; use their published v0.X.Y."""
    staging_version = "v0." + PINS[KUBERNETES].removeprefix("v1.")
    lines = Path(_download(KUBERNETES)["GoMod"]).read_text().splitlines()
    staged = sorted(
        {
            line.split()[0]
            for line in lines
            if line.strip().endswith(" v0.0.0") and "k8s.io/" in line
        }
    )
    return [f"\t{module} => {module} {staging_version}" for module in staged]


#: Parts of a module that no Go package needs; left out of a copy with restored links.
NOT_GO = ("docs", "ui", "sdks", "examples", "community", "manifests", ".github")


def _copy_with_symlinks(component: Component, target: Path) -> None:
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(module_dir(component.module), partial, ignore=shutil.ignore_patterns(*NOT_GO))
    for folder in [partial, *partial.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)  # the module cache is read-only
    for path, points_to in component.symlinks:
        (partial / path).symlink_to(points_to)
    partial.rename(target)


def _write_wrapper(component: Component, source: Path) -> None:
    source.mkdir(parents=True, exist_ok=True)
    go_mod = [f"module hybridquantum.test/{component.name}", "", "go 1.26.0", ""]
    go_mod.append(f"require {component.module} {component.version}")
    if component.module == KUBERNETES:
        go_mod += ["", "replace (", *_staging_replacements(), ")"]
    if component.symlinks:
        linked = source.parent / f"{component.name}-module"
        _copy_with_symlinks(component, linked)
        go_mod += ["", f"replace {component.module} => {linked}"]
    (source / "go.mod").write_text("\n".join(go_mod) + "\n")
    if component.main_source:
        (source / "main.go").write_text(component.main_source)
    else:  # keep the packages in the module graph for `go mod tidy`
        imports = "\n".join(f'\t_ "{package}"' for package in component.packages)
        (source / "tools.go").write_text(
            f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"
        )


def build_component(component: Component, out: Path, log=print) -> None:
    source = cache_root() / pins_key() / "src" / component.name
    _write_wrapper(component, source)
    started = time.monotonic()
    _go(["mod", "tidy"], cwd=source)
    _go(
        ["build", "-trimpath", f"-ldflags={component.ldflags()}", "-o", f"{out}/",
         *component.packages],
        cwd=source,
    )  # fmt: skip
    log(f"built {component.name} {component.version} in {time.monotonic() - started:.0f} s")


def ensure_binaries(log=print) -> Path:
    """Build every missing binary of the pinned engines; return the folder that holds them."""
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    for component in COMPONENTS:
        wanted = _binaries_of(component)
        if all((out / name).is_file() for name in wanted):
            continue
        build_component(component, out, log)
        missing = [name for name in wanted if not (out / name).is_file()]
        if missing:
            raise EngineUnavailable(f"building {component.name} made no {', '.join(missing)}")
    return out


def _binaries_of(component: Component) -> list[str]:
    if component.main_source:  # `go build .` names the binary after the wrapper module
        return [component.name]
    return [package.rsplit("/", 1)[-1] for package in component.packages]


def kueue_crds() -> list[Path]:
    return sorted((module_dir(KUEUE) / "config/components/crd/bases").glob("*.yaml"))


def argo_crds() -> list[Path]:
    return sorted((module_dir(ARGO) / "manifests/base/crds/full").glob("argoproj.io_*.yaml"))


def versions() -> dict[str, str]:
    """Short names and versions, for logs and the docs."""
    return {
        "kubernetes": PINS[KUBERNETES],
        "etcd": PINS[ETCD],
        "kueue": PINS[KUEUE],
        "argo-workflows": PINS[ARGO],
    }


if __name__ == "__main__":
    try:
        print(ensure_binaries(log=lambda text: print(text, file=sys.stderr)))
    except EngineUnavailable as exc:
        sys.exit(f"engines: {exc}")
