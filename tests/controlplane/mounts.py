"""Private mount namespaces for the control plane's processes and the pods' containers.

A process started through ``in_mount_namespace`` sees the given folders at the given paths and
nobody else does (``unshare --mount --propagation private``): the node agent gives each
container its volumes this way, and Kueue gets the metrics certificate it reads from a fixed
path. Nothing on the machine's own file tree changes but empty mount-point folders.
"""

from __future__ import annotations

import shlex
from pathlib import Path

HOLDING = "/run/hq-node-agent-keep"


def mount_script(mounts: list[tuple[str, str, bool]], keep: list[str], workdir: str) -> str:
    """Shell run inside the container's mount namespace: bind the volumes, then exec.

    A volume mounted over a folder can hide what lies below it on this machine: the sources of
    other volumes (the pod's folder, when the checkout lives under ``/tmp`` and a volume is
    mounted at ``/tmp``) and what the container needs (the virtual environment, the store).
    So every source and every such path is first bound to a holding place, while the tree is
    whole; volumes are mounted from there, and hidden paths put back on top at the end.
    """
    targets = sorted(enumerate(mounts), key=lambda item: item[1][1].count("/"))
    hidden = [k for k in keep if any(k.startswith(t.rstrip("/") + "/") for _, t, _ in mounts)]
    lines = ["set -e", f"mkdir -p {HOLDING}", f"mount -t tmpfs hq-keep {HOLDING}"]
    held = [(f"{HOLDING}/m{i}", source) for i, (source, _, _) in enumerate(mounts)]
    held += [(f"{HOLDING}/k{i}", path) for i, path in enumerate(hidden)]
    for place, source in held:
        lines += [_mount_point(place, source), f"mount --bind {shlex.quote(source)} {place}"]
    for index, (source, target, read_only) in targets:
        quoted = shlex.quote(target)
        lines += [_mount_point(quoted, source), f"mount --bind {HOLDING}/m{index} {quoted}"]
        if read_only:
            lines.append(f"mount -o remount,bind,ro {quoted}")
    for index, path in enumerate(hidden):
        quoted = shlex.quote(path)
        lines += [f"mkdir -p {quoted}", f"mount --bind {HOLDING}/k{index} {quoted}"]
    lines += [f"cd {shlex.quote(workdir)}", 'exec "$@"']
    return "\n".join(lines)


def _mount_point(place: str, source: str) -> str:
    """A folder to mount a folder on, an (empty) file to mount a file on."""
    if Path(source).is_file():
        return f'mkdir -p "$(dirname {place})" && touch {place}'
    return f"mkdir -p {place}"


def in_mount_namespace(
    argv: list[str],
    mounts: list[tuple[str, str, bool]],
    keep: list[str] | None = None,
    workdir: str = "/",
    own_pids: bool = False,
) -> list[str]:
    """``argv`` run with ``mounts`` ((source, target, read-only) triples) in its own namespace.

    ``own_pids`` also gives it a PID namespace, as a container has, with ``argv`` as its PID 1:
    programs made for containers may signal every process they can see (argoexec forwards a
    signal to PID -1 once it has released its child, which outside a PID namespace is every
    process of the machine). Signal that PID 1 with ``namespace_init``; killing ``unshare``
    kills the whole namespace.
    """
    script = mount_script(mounts, keep or [], workdir)
    isolate = ["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"] if own_pids else []
    return ["unshare", "--mount", "--propagation", "private", *isolate,
            "sh", "-c", script, "sh", *argv]  # fmt: skip


def namespace_init(unshare_pid: int) -> int:
    """The PID (as this machine sees it) of the process ``unshare --fork`` started, which is
    PID 1 of its namespace; ``unshare_pid`` itself while it has not forked yet."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    except OSError:
        return unshare_pid
    return int(children[0]) if children else unshare_pid
