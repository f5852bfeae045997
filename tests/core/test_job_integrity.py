"""A job in the store cannot lie: every changed byte is refused, never turned into a number.

Spec: the manifest and the batch records seal themselves with a checksum, the manifest's
structure is cross-checked on every read, and every other file is checked against the sha256
the manifest or a record gives. A sampled sweep of single-byte changes over every file of a
small job must give either the untouched values or a clean ``ArtifactError``: no wrong value,
no other exception. Temporary files a killed writer leaves are removed by the next write.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from pathlib import Path

import numpy as np
import pytest
from helpers import random_ansatz, run_job

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.manifest import JobManifest, load_manifest
from hybrid_provider.core.reconstruct.combine import reconstruct_job

#: Single-byte changes tried per file (positions and replacement bytes drawn with a fixed seed).
FLIPS_PER_FILE = 40


@pytest.fixture(scope="module")
def job_folder(tmp_path_factory):
    """One small shot-mode job, run; each test flips bytes in a copy of it."""
    folder = tmp_path_factory.mktemp("integrity")
    options = ExecutionOptions(mode="shots", shots=200, seed=3)
    job, result = run_job(
        random_ansatz(4, reps=1), ["ZZZZ", "XIXI"], folder, options, partition_labels="AABB"
    )
    return Path(job.manifest_uri.removeprefix("file://")).parent, result.values


def _files(job_dir: Path) -> list[Path]:
    return sorted(p for p in job_dir.rglob("*") if p.is_file())


def test_no_single_byte_change_anywhere_in_a_job_gives_a_wrong_value(job_folder):
    job_dir, reference = job_folder
    rng = random.Random(20261202)
    outcomes = {"same": 0, "refused": 0}
    for path in _files(job_dir):
        original = path.read_bytes()
        for _ in range(FLIPS_PER_FILE):
            position = rng.randrange(len(original))
            changed = bytearray(original)
            changed[position] = rng.choice([b for b in range(256) if b != original[position]])
            path.write_bytes(bytes(changed))
            try:
                values = reconstruct_job(f"file://{job_dir}/manifest.json", device="cpu").values
            except ArtifactError:
                outcomes["refused"] += 1
            else:
                where = f"{path.name} byte {position}"
                assert values == reference, f"a changed {where} gave other values"
                outcomes["same"] += 1
            finally:
                path.write_bytes(original)
    assert outcomes["refused"] > outcomes["same"]  # the sweep really hit checked content


def test_a_changed_batch_index_or_observable_label_is_refused_even_with_a_new_seal(job_folder):
    """The issue's two silent cases, re-sealed as a careful forger would: the structure checks
    still refuse them."""
    job_dir, _ = job_folder
    uri = f"file://{job_dir}/manifest.json"
    manifest = load_manifest(uri)
    original = (job_dir / "manifest.json").read_bytes()
    shifted = manifest.batches[1].model_copy(update={"index": 0})
    relabelled = manifest.subsystems[0].model_copy(
        update={"subobservables": ["ZY", *manifest.subsystems[0].subobservables[1:]]}
    )
    try:
        for change in ({"batches": [manifest.batches[0], shifted, *manifest.batches[2:]]},
                       {"subsystems": [relabelled, *manifest.subsystems[1:]]}):  # fmt: skip
            forged = manifest.model_dump(mode="json") | {
                k: [item.model_dump(mode="json") for item in v] for k, v in change.items()
            }
            store.write_sealed_json(uri, forged)
            with pytest.raises(ArtifactError, match="inconsistent"):
                load_manifest(uri)
    finally:
        (job_dir / "manifest.json").write_bytes(original)


def test_a_manifest_of_the_previous_format_is_refused_with_the_fix(job_folder, tmp_path):
    job_dir, _ = job_folder
    payload = json.loads((job_dir / "manifest.json").read_text())
    payload["schema_version"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="schema version 1, this release reads 3: re-run"):
        load_manifest(f"file://{tmp_path}/manifest.json")


def test_the_manifest_model_refuses_paths_out_of_the_job(job_folder):
    job_dir, _ = job_folder
    manifest = load_manifest(f"file://{job_dir}/manifest.json")
    payload = manifest.model_dump(mode="json")
    payload["circuit"]["path"] = "../elsewhere/circuit.qpy"
    with pytest.raises(ValueError, match="leaves the job folder"):
        JobManifest.model_validate(payload)


# --- temporary files -------------------------------------------------------------------------


def _write_then_die(uri: str) -> None:
    """A writer killed between writing its temporary file and renaming it."""
    os.replace = lambda *args: os._exit(9)  # type: ignore[assignment]
    store.write_bytes_atomic(uri, b"half")


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "results" / "batch-00000.npz"
    uri = f"file://{target}"
    writer = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(uri,))
    writer.start()
    writer.join()
    assert writer.exitcode == 9
    (left,) = [p for p in target.parent.iterdir() if ".tmp-" in p.name]
    live = target.parent / f"{target.name}.tmp-{os.uname().nodename}-{os.getpid()}-0"
    live.write_bytes(b"a write in progress")
    store.write_bytes_atomic(uri, b"whole")
    assert target.read_bytes() == b"whole" and not left.exists()
    assert live.exists(), "a living writer's temporary file is left alone"


def test_a_resumed_batch_clears_what_its_killed_run_left(tmp_path):
    job, _ = run_job(random_ansatz(4, reps=1), ["ZZZZ"], tmp_path, partition_labels="AABB")
    results = Path(job.manifest_uri.removeprefix("file://")).parent / "results"
    stale = results / "batch-00001.npz.tmp-elsewhere-1-abc"
    stale.write_bytes(b"from a pod killed long ago")
    os.utime(stale, (0, 0))
    (results / "batch-00001.json").unlink()  # the batch did not finish: it runs again
    run_batch(job.manifest_uri, 1, ExecutionOptions())
    assert not stale.exists()
    assert np.isfinite(reconstruct_job(job.manifest_uri, device="cpu").values).all()
