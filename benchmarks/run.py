"""Reference pipeline vs ours, same cases, one process: times, peak memory, ratios, agreement.

    python -m benchmarks.run            # the full set (the reference takes a few minutes)
    python -m benchmarks.run --quick    # smaller cases, for iterating

Exits 1 only when an answer disagrees: exact values vs StatevectorEstimator (1e-8), shot values
vs the exact value (5 combined standard errors), or our reconstruction vs the addon's
``reconstruct_expectation_values`` fed the very same outcomes (1e-10).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import numpy as np
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import PauliList, SparsePauliOp
from rich.console import Console
from rich.table import Table

from benchmarks import cases, reference
from benchmarks.addon_results import addon_results
from benchmarks.measure import machine, measure
from hybrid_provider.core.cut.experiments import distinct_choices
from hybrid_provider.core.cut.job import subsystem_refs, write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.choices import run_choices
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes
from hybrid_provider.core.pipeline import estimate_in_process, exact_means, predicted_std_errors
from hybrid_provider.core.reconstruct.combine import (
    FactorAccumulator,
    combine_factors,
    reconstruct_job,
)

EXACT_TOLERANCE = 1e-8
RECONSTRUCTION_TOLERANCE = 1e-10
SIGMAS = 5.0

console = Console(width=220)
failures: list[str] = []


def exact_values(case: cases.Case) -> np.ndarray:
    observables = [SparsePauliOp(label) for label in case.observables]
    result = StatevectorEstimator().run([(case.circuit, observables)]).result()
    return np.asarray(result[0].data.evs, dtype=float)


def plan_of(case: cases.Case):
    return plan_cuts(
        case.circuit,
        PauliList(case.observables),
        partition_labels=case.partition,
        max_subcircuit_qubits=case.max_qubits,
    )


def ours(case: cases.Case, options: ExecutionOptions):
    """Plan + in-process execution + reconstruction, as `estimate --in-process` does."""
    plan = plan_of(case)
    return plan, estimate_in_process(plan, options, reconstruct_device="auto")


def ours_job(case: cases.Case, options: ExecutionOptions, batches: int = 8):
    """The distributed path on one machine: write_job (the plan) → run_batch each → reconstruct_job."""
    with tempfile.TemporaryDirectory() as store:
        plan = plan_of(case)
        job = write_job(case.circuit, plan, store, "bench", batches)
        for batch in job.manifest.batches:
            run_batch(job.manifest_uri, batch.index, options, manifest=job.manifest)
        return reconstruct_job(job.manifest_uri, device="auto")


def check(label: str, ok: bool, detail: str) -> str:
    if not ok:
        failures.append(f"{label}: {detail}")
    return "[green]ok[/]" if ok else f"[red]FAIL[/] {detail}"


def reference_predicted_se(plan, prepared, shots: int) -> np.ndarray:
    """Delta-method standard error of the addon's estimator (every coefficient's subexperiments
    sampled independently with ``shots`` each), at the exact factors."""
    choices = distinct_choices(plan)
    coefficients = choices.coefficients
    gathered = [
        means[choices.indices[s.label]]
        for s, means in zip(choices.subsystems, exact_means(choices), strict=True)
    ]
    variance = np.zeros(gathered[0].shape[1])
    from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

    for position, subsystem in enumerate(choices.subsystems):
        others = np.prod([g for j, g in enumerate(gathered) if j != position], axis=0)
        collection = ObservableCollection(subsystem.observables)
        group_factor = np.array(
            [1.0 / len(collection.lookup[p]) for p in subsystem.observables]
        )  # each group measured with `shots`; an observable in m groups averages them
        mean = gathered[position]
        variance += np.sum(
            (coefficients[:, None] * others) ** 2 * (1 - mean**2) / shots * group_factor, axis=0
        )
    return np.sqrt(variance)


def run_case(case, shot_counts, *, with_reference: bool, rows: list, recon_rows: list):
    exact = exact_values(case)
    plan = plan_of(case)
    prepared = isa = None
    transpile_s = None
    if with_reference:
        prep = measure(reference.prepare, case)
        prepared = prep.value
    for shots in shot_counts:
        mode = "exact" if shots is None else f"{shots} shots"
        if shots is None:
            options = ExecutionOptions(mode="exact")
        else:
            # Equal total shot budget: the addon runs every duplicate subexperiment, we run each
            # distinct one once, so ours gets the addon's total spread over fewer circuits.
            choices = distinct_choices(plan)
            refs = subsystem_refs(plan, choices)
            addon_count = plan.num_coefficients * sum(r.num_groups for r in refs)
            our_count = sum(r.num_groups * r.num_distinct for r in refs)
            options = ExecutionOptions(mode="shots", shots=round(shots * addon_count / our_count))
        mine = measure(ours, case, options)
        _, result = mine.value
        values = np.asarray(result.reconstruction.values)
        errors = np.asarray(result.reconstruction.std_errors)
        job = measure(ours_job, case, options)
        row = {
            "case": case.name,
            "mode": mode,
            "cuts": plan.num_cuts,
            "coefficients": plan.num_coefficients,
            "ours_s": mine.seconds,
            "ours_mb": mine.peak_mb,
            "ours_circuits": result.num_subexperiments,
            "job_s": job.seconds,
            "job_mb": job.peak_mb,
            "ours_err": float(np.max(np.abs(values - exact))),
            "ours_se": float(np.max(errors)),
        }
        if shots is None:
            bad = row["ours_err"] >= EXACT_TOLERANCE
            job_err = float(np.max(np.abs(np.asarray(job.value.values) - exact)))
            row["check"] = check(
                f"{case.name} exact",
                not bad and job_err < EXACT_TOLERANCE,
                f"{row['ours_err']:.1e}",
            )
        else:
            z = np.abs(values - exact) / np.maximum(errors, 1e-300)
            row["check"] = check(
                f"{case.name} {mode}", bool(np.all(z < SIGMAS)), f"z={z.max():.1f}"
            )
            row["ours_shots"] = options.shots
            row["ours_pred_se"] = float(np.max(predicted_std_errors(plan, options.shots)))
            row["ours_w_pred_se"] = float(
                np.max(predicted_std_errors(plan, options.shots, "weighted"))
            )
        if with_reference:
            if shots is None:
                sampled = measure(reference.exact_sample, prepared)
                stages = {"generate": prepared.seconds["generate"], "sample": sampled.seconds}
                peak = max(prep.peak_mb, sampled.peak_mb)
            else:
                if isa is None:
                    transpiled = measure(reference.transpile, prepared)
                    isa, transpile_s = transpiled.value[0], transpiled.seconds
                    transpile_mb = transpiled.peak_mb
                sampled = measure(reference.sample, isa, shots)
                stages = {
                    "generate": prepared.seconds["generate"],
                    "transpile": transpile_s,
                    "sample": sampled.seconds,
                }
                peak = max(prep.peak_mb, transpile_mb, sampled.peak_mb)
            recon = measure(reference.reconstruct, prepared, sampled.value[0])
            stages["reconstruct"] = recon.seconds
            peak = max(peak, recon.peak_mb)
            ref_values = np.asarray(recon.value[0])
            row.update(
                ref_s=sum(stages.values()),
                ref_stages=stages,
                ref_mb=peak,
                ref_err=float(np.max(np.abs(ref_values - exact))),
            )
            if shots is not None:
                row["ref_pred_se"] = float(np.max(reference_predicted_se(plan, prepared, shots)))
                recon_rows.append(compare_reconstruction(case, plan, prepared, options))
        rows.append(row)


def compare_reconstruction(case, plan, prepared, options) -> dict:
    """Ours vs reconstruct_expectation_values on the same outcomes (ours, duplicated for the
    addon by the coefficient → distinct index)."""
    choices = distinct_choices(plan)
    outcomes = Outcomes.concatenate(list(run_choices(choices.subsystems, options, seed=[0, 0])))
    refs = subsystem_refs(plan, choices)
    indices = choices.indices

    def ours_reconstruct():
        accumulator = FactorAccumulator(np, refs, len(case.observables))
        accumulator.add_outcomes(0, outcomes)
        return combine_factors(np, choices.coefficients, indices, accumulator.factors())

    mine = measure(ours_reconstruct)
    feed = addon_results(outcomes, refs, indices, len(choices.coefficients))
    feed = {key: feed[str(key)] for key in prepared.subobservables}  # the addon's own labels
    theirs = measure(reference.reconstruct, prepared, feed)
    difference = float(np.max(np.abs(np.asarray(theirs.value[0]) - mine.value[0])))
    shots_total = int(outcomes.shots.sum())
    addon_shots = sum(len(choices.coefficients) * r.num_groups for r in refs) * shots_total
    return {
        "case": case.name,
        "shots": options.shots,
        "experiments": f"{len(choices.coefficients) * sum(r.num_groups for r in refs)}"
        f" ({outcomes.num_experiments} distinct)",
        "addon_shots": addon_shots,
        "our_shots": shots_total,
        "ours_s": mine.seconds,
        "ours_mb": mine.peak_mb,
        "ref_s": theirs.seconds,
        "ref_mb": theirs.peak_mb,
        "difference": difference,
        "check": check(
            f"{case.name} reconstruction {options.shots}",
            difference < RECONSTRUCTION_TOLERANCE,
            f"{difference:.1e}",
        ),
    }


def scaling(max_cuts: int, reference_up_to: int, rows: list) -> None:
    for k in range(1, max_cuts + 1):
        case = cases.scaling_case(k)
        exact = exact_values(case)
        mine = measure(ours, case, ExecutionOptions(mode="exact"))
        plan, result = mine.value
        err = float(np.max(np.abs(np.asarray(result.reconstruction.values) - exact)))
        row = {
            "cuts": k,
            "coefficients": plan.num_coefficients,
            "circuits": result.num_subexperiments,
            "ours_s": mine.seconds,
            "ours_mb": mine.peak_mb,
            "err": err,
            "check": check(f"scaling {k}", err < EXACT_TOLERANCE, f"{err:.1e}"),
        }
        if k <= reference_up_to:
            prepared = measure(reference.prepare, case)
            sampled = measure(reference.exact_sample, prepared.value)
            recon = measure(reference.reconstruct, prepared.value, sampled.value[0])
            row["ref_s"] = prepared.seconds + sampled.seconds + recon.seconds
            row["ref_mb"] = max(prepared.peak_mb, sampled.peak_mb, recon.peak_mb)
        rows.append(row)


def _fmt(seconds) -> str:
    return "—" if seconds is None else f"{seconds:.3f}"


def _ratio(a, b) -> str:
    return "—" if a is None or b is None else f"{a / b:.0f}×" if a / b >= 10 else f"{a / b:.1f}×"


def report(rows, recon_rows, scale_rows) -> None:
    table = Table(title="End to end: reference (addon tutorial) vs ours, same process")
    for column in [
        "case", "mode", "reference s", "ours s", "ratio", "ours job-path s", "ref peak MB",
        "ours peak MB", "ref |err|", "ours |err|", "ours SE", "SE pred ref/ours/weighted", "check",
    ]:  # fmt: skip
        table.add_column(column)
    for r in rows:
        predicted = (
            f"{r.get('ref_pred_se', float('nan')):.2e}/{r['ours_pred_se']:.2e}/"
            f"{r['ours_w_pred_se']:.2e}"
            if "ours_pred_se" in r
            else "—"
        )
        table.add_row(
            r["case"], r["mode"], _fmt(r.get("ref_s")), _fmt(r["ours_s"]),
            _ratio(r.get("ref_s"), r["ours_s"]), _fmt(r["job_s"]),
            f"{r['ref_mb']:.0f}" if "ref_mb" in r else "—", f"{r['ours_mb']:.0f}",
            f"{r['ref_err']:.1e}" if "ref_err" in r else "—", f"{r['ours_err']:.1e}",
            f"{r['ours_se']:.1e}", predicted, r["check"],
        )  # fmt: skip
    console.print(table)
    for r in rows:
        if "ref_stages" in r:
            stages = ", ".join(f"{k} {v:.2f} s" for k, v in r["ref_stages"].items())
            console.print(f"  reference stages, {r['case']} {r['mode']}: {stages}")

    table = Table(
        title="Reconstruction on the same outcomes: reconstruct_expectation_values vs ours"
    )
    for column in ["case", "shots", "subexperiments", "addon s", "ours s", "ratio",
                   "addon peak MB", "ours peak MB", "max |diff|", "check"]:  # fmt: skip
        table.add_column(column)
    for r in recon_rows:
        table.add_row(
            r["case"], str(r["shots"]), r["experiments"], _fmt(r["ref_s"]), f"{r['ours_s']:.4f}",
            _ratio(r["ref_s"], r["ours_s"]), f"{r['ref_mb']:.0f}", f"{r['ours_mb']:.0f}",
            f"{r['difference']:.1e}", r["check"],
        )  # fmt: skip
    console.print(table)

    table = Table(title="Scaling, exact mode: 1..k cut CX (efficient_su2(12, linear, reps=k), 6|6)")
    for column in ["cuts", "coefficients (6^k)", "circuits run", "ours s", "s / previous",
                   "6^k / previous", "ours peak MB", "reference s", "ratio", "|err|", "check"]:  # fmt: skip
        table.add_column(column)
    previous = None
    for r in scale_rows:
        table.add_row(
            str(r["cuts"]), str(r["coefficients"]), str(r["circuits"]), _fmt(r["ours_s"]),
            "—" if previous is None else f"{r['ours_s'] / previous:.1f}",
            "—" if previous is None else "6", f"{r['ours_mb']:.0f}", _fmt(r.get("ref_s")),
            _ratio(r.get("ref_s"), r["ours_s"]), f"{r['err']:.1e}", r["check"],
        )  # fmt: skip
        previous = r["ours_s"]
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases, seconds not minutes")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    console.print(machine())
    rows, recon_rows, scale_rows = [], [], []
    if args.quick:
        run_case(cases.reference_case(8, 2), [1000, None], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        run_case(cases.wire_case(), [None, 4096], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        run_case(cases.find_cuts_case(), [None], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        scaling(3, 2, scale_rows)
    else:
        run_case(cases.reference_case(), [1000, 4096, None], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        run_case(cases.wire_case(), [None, 4096], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        run_case(cases.find_cuts_case(), [None, 4096], with_reference=True, rows=rows,
                 recon_rows=recon_rows)  # fmt: skip
        scaling(5, 2, scale_rows)
    report(rows, recon_rows, scale_rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"machine": machine(), "end_to_end": rows, "reconstruction": recon_rows,
                 "scaling": scale_rows}, handle, indent=2, default=str,
            )  # fmt: skip
    if failures:
        console.print("[red]answers disagree:[/] " + "; ".join(failures))
        return 1
    console.print("[green]all answers agree[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
