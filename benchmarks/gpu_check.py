"""One-shot GPU check, for a session that has a GPU (none was available when this was written).

    python -m benchmarks.gpu_check [--cuts 3] [--shots 4096]

Checks, in order, printing one line each and a JSON summary at the end:
1. what is there: CuPy and a CUDA device, Aer's available devices;
2. reconstruction on CuPy equals NumPy on the same outcomes (1e-10), and how long each takes;
3. Aer on the GPU (job path and in-process, exact) equals the statevector reference (1e-8);
4. timings CPU vs GPU for the in-process exact run and the shot-mode reconstruction.
Exits 1 when an answer disagrees, 2 when no GPU is usable (then nothing is compared).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
from qiskit.quantum_info import PauliList

from benchmarks import cases
from hybrid_provider.core.cut.experiments import distinct_choices
from hybrid_provider.core.cut.job import subsystem_refs, write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute import simulate
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.choices import run_choices
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes
from hybrid_provider.core.pipeline import estimate_in_process
from hybrid_provider.core.reconstruct import arrays
from hybrid_provider.core.reconstruct.combine import (
    FactorAccumulator,
    combine_factors,
    reconstruct_job,
)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="GPU check: CuPy reconstruction, Aer GPU")
    parser.add_argument("--cuts", type=int, default=3)
    parser.add_argument("--shots", type=int, default=4096)
    args = parser.parse_args(argv)
    summary: dict[str, object] = {}
    cupy = arrays.cupy_or_none()
    aer_gpu = simulate.gpu_available()
    summary["cupy"] = cupy is not None
    summary["aer_devices"] = list(simulate.aer_simulator("cpu").available_devices())
    print(f"CuPy with a CUDA device: {cupy is not None}; Aer devices: {summary['aer_devices']}")
    if cupy is None and not aer_gpu:
        print("no usable GPU: nothing to compare")
        print(json.dumps(summary))
        return 2
    failures = []
    case = cases.scaling_case(args.cuts)
    exact = np.asarray(__import__("benchmarks.run", fromlist=["exact_values"]).exact_values(case))
    plan = plan_cuts(case.circuit, PauliList(case.observables), partition_labels=case.partition)

    if cupy is not None:
        choices = distinct_choices(plan)
        options = ExecutionOptions(mode="shots", shots=args.shots)
        outcomes = Outcomes.concatenate(list(run_choices(choices.subsystems, options, seed=[0, 0])))
        refs = subsystem_refs(plan, choices)

        def reconstruct(xp):
            accumulator = FactorAccumulator(xp, refs, len(case.observables))
            accumulator.add_outcomes(0, outcomes)
            result = combine_factors(
                xp, choices.coefficients, choices.indices, accumulator.factors()
            )
            if xp is not np:
                xp.cuda.Stream.null.synchronize()
            return result

        reconstruct(cupy)  # warm-up: kernels compile on first use
        (cpu_values, cpu_errors), cpu_s = timed(reconstruct, np)
        (gpu_values, gpu_errors), gpu_s = timed(reconstruct, cupy)
        difference = float(np.max(np.abs(cpu_values - gpu_values)))
        ok = difference < 1e-10 and np.allclose(cpu_errors, gpu_errors, atol=1e-10)
        failures += [] if ok else [f"CuPy reconstruction differs by {difference:.1e}"]
        summary["reconstruction"] = {"numpy_s": cpu_s, "cupy_s": gpu_s, "max_diff": difference}
        print(f"reconstruction NumPy {cpu_s:.4f} s, CuPy {gpu_s:.4f} s, |diff| {difference:.1e}")

    if aer_gpu:
        cpu, cpu_s = timed(estimate_in_process, plan, ExecutionOptions(device="cpu"))
        gpu, gpu_s = timed(estimate_in_process, plan, ExecutionOptions(device="gpu"))
        error = float(np.max(np.abs(np.asarray(gpu.reconstruction.values) - exact)))
        failures += [] if error < 1e-8 else [f"Aer GPU in-process exact off by {error:.1e}"]
        with tempfile.TemporaryDirectory() as store:
            job = write_job(case.circuit, plan, store, "gpu-check", 4)
            for batch in job.manifest.batches:
                report = run_batch(
                    job.manifest_uri,
                    batch.index,
                    ExecutionOptions(device="gpu"),
                    manifest=job.manifest,
                )
            job_values = reconstruct_job(job.manifest_uri).values
        job_error = float(np.max(np.abs(np.asarray(job_values) - exact)))
        failures += [] if job_error < 1e-8 else [f"Aer GPU job path off by {job_error:.1e}"]
        summary["aer"] = {
            "in_process_cpu_s": cpu_s,
            "in_process_gpu_s": gpu_s,
            "error": error,
            "job_error": job_error,
            "job_device": report.device,
        }
        print(f"in-process exact CPU {cpu_s:.3f} s, GPU {gpu_s:.3f} s; |err| {error:.1e}")
        print(f"job path on {report.device}: |err| {job_error:.1e}")
    summary["failures"] = failures
    print(json.dumps(summary, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
