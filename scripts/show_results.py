"""Print the demo's results table and check it against the exact values (exit 1 if off).

Give the CSV, or a results folder holding exactly one (the demo's fresh store: the name of an
ad-hoc run's file comes from its run id, see ``dags/nightly_circuit_cutting.py``).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

TOLERANCE = 1e-8  # exact mode must agree with Qiskit's exact EstimatorV2 this closely


def only_csv(path: Path) -> Path:
    """The CSV itself, or the one CSV under a folder."""
    if not path.is_dir():
        return path
    found = sorted(path.rglob("*.csv"))
    if len(found) != 1:
        raise SystemExit(f"expected one results CSV under {path}, found {len(found)}: {found}")
    return found[0]


def main(given: str) -> int:
    path = only_csv(Path(given))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    print(f"\nReconstructed vs exact ({rows[0]['date']}, {rows[0]['mode']} mode), from {path}:")
    print(
        f"  {'observable':<14} {'reconstructed':>16} {'std error':>10} {'exact':>16} {'|diff|':>10}"
    )
    worst = 0.0
    for row in rows:
        diff = abs(float(row["value"]) - float(row["exact"]))
        worst = max(worst, diff)
        print(
            f"  {row['observable']:<14} {float(row['value']):>+16.10f} {float(row['std_error']):>10.2e}"
            f" {float(row['exact']):>+16.10f} {diff:>10.2e}"
        )
    exact_mode = rows[0]["mode"] == "exact"
    verdict = "OK" if (worst < TOLERANCE or not exact_mode) else "MISMATCH"
    print(f"largest difference {worst:.2e} (tolerance {TOLERANCE:g} in exact mode): {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
