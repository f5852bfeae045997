"""A container's mounts (mounts.py): its volumes where the pod asks, nothing hidden that it needs.

The case that broke a checkout under /tmp: a volume mounted at /tmp hid the sources of the
pod's other volumes and the virtual environment, which lived below /tmp too.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from mounts import in_mount_namespace

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="mount namespaces need root and unshare(1)",
)


def test_a_volume_over_tmp_hides_neither_other_sources_nor_kept_paths(tmp_path):
    assert str(tmp_path).startswith("/tmp/")  # the case at hand: everything below /tmp
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "value").write_text("from-a-volume")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "tool").write_text("kept")
    script = "cat /var/run/hq-test/value; echo; cat {venv}/tool; echo; ls /tmp; echo $$"
    argv = in_mount_namespace(
        ["sh", "-c", script.format(venv=tmp_path / "venv")],
        [
            (str(tmp_path / "scratch"), "/tmp", False),
            (str(tmp_path / "config"), "/var/run/hq-test", True),
        ],  # fmt: skip
        keep=[str(tmp_path / "venv")],
        own_pids=True,
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    value, kept, listing, pid = done.stdout.splitlines()
    assert (value, kept) == ("from-a-volume", "kept")
    assert listing == tmp_path.parts[2], "/tmp is the scratch volume (holding the kept path)"
    assert pid == "1", "the container's command is PID 1 of its own PID namespace"
    assert not (tmp_path / "scratch" / "value").exists()


def test_a_read_only_volume_cannot_be_written(tmp_path):
    (tmp_path / "config").mkdir()
    argv = in_mount_namespace(
        ["sh", "-c", "echo x > /var/run/hq-test-ro/new"],
        [(str(tmp_path / "config"), "/var/run/hq-test-ro", True)],
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "Read-only" in done.stderr
    assert not (tmp_path / "config" / "new").exists()
