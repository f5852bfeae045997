"""``hybrid-quantum``: the quantum stage without Airflow, and the entry point pods run.

``estimate`` chains the stages; ``cut``, ``run-batch`` and ``reconstruct`` are the stages
themselves; ``verify`` reruns stored batches to prove they reproduce; ``metrics``
serves Prometheus metrics of a store. Bad input exits with
status 2 and one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from hybrid_provider.constants import FLAVORS
from hybrid_provider.core.cut import DEFAULT_MAX_COEFFICIENTS
from hybrid_provider.core.errors import HybridQuantumError, InputError
from hybrid_provider.core.failures import describe, exit_code

DEFAULT_STORE = ".hybrid-quantum"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (HybridQuantumError, OSError, ValidationError) as exc:
        # exit codes from core.failures: 2 for bad input (Argo does not retry it), 1 else
        print(f"hybrid-quantum: error: {describe(exc)}", file=sys.stderr)
        return exit_code(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybrid-quantum",
        description="Distributed circuit cutting: cut, run subexperiments, reconstruct.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    estimate = commands.add_parser("estimate", help="cut, run every batch here, reconstruct")
    _add_cut_arguments(estimate)
    _add_execution_arguments(estimate, required=True)
    estimate.add_argument(
        "--in-process",
        action="store_true",
        help="run everything in memory (no store, no QPY, no batches): fastest on one machine",
    )
    _add_json(estimate)
    estimate.set_defaults(handler=_estimate)

    cut = commands.add_parser("cut", help="write a cut job to the store; prints its manifest URI")
    _add_cut_arguments(cut)
    _add_json(cut)
    cut.set_defaults(handler=_cut)

    run_batch = commands.add_parser("run-batch", help="run one batch of a job (what a pod runs)")
    run_batch.add_argument("manifest_uri")
    which = run_batch.add_mutually_exclusive_group(required=True)
    which.add_argument("--batch", type=int, help="batch index")
    which.add_argument("--all", action="store_true", help="every batch, one after another")
    _add_execution_arguments(run_batch, required=True)
    run_batch.set_defaults(handler=_run_batch)

    workflow = commands.add_parser(
        "workflow",
        help="print the Argo Workflow a job would be submitted as (YAML; kubectl create -f -)",
    )
    workflow.add_argument("manifest_uri")
    workflow.add_argument("--flavor", default="cpu", choices=["cpu", "gpu", "qpu"])
    workflow.add_argument("--queue", help="Kueue LocalQueue (default: per flavor, as the chart)")
    workflow.add_argument("--priority-class", help="Kueue WorkloadPriorityClass")
    workflow.add_argument("--namespace", default="default", help="namespace of the workflow")
    workflow.add_argument("--image", help="executor image (GPU batches: --gpu-image)")
    workflow.add_argument("--gpu-image", help="executor image for GPU batches")
    workflow.add_argument("--name", help="workflow name (default: derived from the job)")
    _add_execution_arguments(workflow, required=False)
    workflow.set_defaults(handler=_workflow)

    submit = commands.add_parser(
        "submit",
        help="run a job's batches on this machine's local backend (a detached runner); "
        "--flavor auto places them from the local queue and earlier runs",
    )
    submit.add_argument("manifest_uri")
    submit.add_argument("--store", default=DEFAULT_STORE, help="store whose local queue runs it")
    submit.add_argument("--flavor", default="cpu", choices=[*FLAVORS, "auto"])
    submit.add_argument("--local-quota", help='slots per flavor as JSON, e.g. {"cpu": 2, "gpu": 1}')
    submit.add_argument(
        "--replace-after",
        type=float,
        help="auto: seconds a batch waits for quota before it moves to a flavor with a free "
        "slot (default 300)",
    )
    submit.add_argument("--name", help="workflow name (default: derived from the job)")
    submit.add_argument(
        "--wait", action="store_true", help="wait until done, then add the run to the history"
    )
    _add_execution_arguments(submit, required=True)
    _add_json(submit)
    submit.set_defaults(handler=_submit)

    reconstruct = commands.add_parser("reconstruct", help="values and standard errors of a job")
    reconstruct.add_argument("manifest_uri")
    reconstruct.add_argument("--device", default="auto", choices=["auto", "gpu", "cpu"])
    _add_json(reconstruct)
    reconstruct.set_defaults(handler=_reconstruct)

    verify = commands.add_parser(
        "verify",
        help="rerun stored batches and check they reproduce the stored outcomes "
        "(exit 0: all match, 1: a batch differs, 2: bad input)",
    )
    verify.add_argument("manifest_uri")
    chosen = verify.add_mutually_exclusive_group()
    chosen.add_argument("--batches", type=int, nargs="+", metavar="N", help="batch indices")
    chosen.add_argument("--sample", type=int, metavar="K", help="K batches chosen at random")
    verify.add_argument("--sample-seed", type=int, help="seed for --sample (default: random)")
    _add_json(verify)
    verify.set_defaults(handler=_verify)

    metrics = commands.add_parser(
        "metrics", help="serve Prometheus metrics of the jobs and local runs in a store"
    )
    metrics.add_argument("--store", required=True, help="store URI (e.g. s3://bucket/prefix)")
    metrics.add_argument("--port", type=int, default=9090, help="port to serve /metrics on")
    metrics.add_argument("--address", default="0.0.0.0", help="address to listen on")
    metrics.set_defaults(handler=_metrics)
    return parser


def _add_cut_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("circuit", help="OpenQASM 2/3 file or URI, or a .qpy file")
    parser.add_argument(
        "--observables",
        required=True,
        help="comma-separated Pauli strings, rightmost letter on qubit 0 (e.g. ZZII,XXXX)",
    )
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--max-subcircuit-qubits", type=int, help="find cuts automatically")
    how.add_argument("--partition", help="one label per qubit, qubit 0 first (e.g. AABB)")
    parser.add_argument(
        "--parameters", help="comma-separated values for the circuit's parameters, in order"
    )
    parser.add_argument("--store", default=DEFAULT_STORE, help="artifact store URI or directory")
    parser.add_argument("--batches", type=int, default=8, help="number of batches (default 8)")
    parser.add_argument(
        "--max-coefficients",
        type=int,
        default=DEFAULT_MAX_COEFFICIENTS,
        help="refuse plans needing more QPD coefficients (default %(default)s: 6 cut CX gates)",
    )
    parser.add_argument("--job", help="job name in the store (default: derived from the inputs)")


def _add_execution_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    mode = parser.add_mutually_exclusive_group(required=required)
    mode.add_argument("--exact", action="store_true", help="exact simulation (no shot noise)")
    mode.add_argument("--shots", type=int, help="shots per subexperiment")
    parser.add_argument("--seed", type=int, default=1234, help="seed for shot sampling")
    parser.add_argument(
        "--device", default="auto", choices=["cpu", "gpu", "auto"], help="Aer device"
    )
    parser.add_argument(
        "--sampler", default="aer", help="aer, aer-sampler, or module:attribute (shot mode)"
    )
    parser.add_argument(
        "--shot-allocation",
        default="uniform",
        choices=["uniform", "weighted"],
        help="shot mode: same shots per subexperiment, or the same total spread by "
        "|coefficient| weight",
    )
    parser.add_argument(
        "--runtime-options",
        help="IBM Runtime job options as JSON, e.g. '{\"twirl_gates\": true}' "
        "(ibm-runtime samplers; docs/ibm-quantum.md)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _options(args: argparse.Namespace):
    from hybrid_provider.core.execute.options import execution_options

    return execution_options(
        mode="exact" if args.exact else "shots",
        shots=args.shots,
        seed=args.seed,
        device=args.device,
        sampler=args.sampler,
        shot_allocation=args.shot_allocation,
        runtime=_json_option(args.runtime_options, "--runtime-options"),
    )


def _json_option(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{flag} must be a JSON object: {exc}") from None


def _parameters(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(value) for value in text.split(",") if value.strip()]
    except ValueError as exc:
        raise InputError(f"--parameters must be comma-separated numbers: {exc}") from exc


def _plan(args: argparse.Namespace):
    """The circuit and its cut plan from the command line's circuit and cut arguments."""
    from hybrid_provider.core.cut.plan import plan_cuts
    from hybrid_provider.core.inputs import load_circuit, parse_observables

    circuit = load_circuit(args.circuit, _parameters(args.parameters))
    observables = parse_observables(args.observables, circuit.num_qubits)
    plan = plan_cuts(
        circuit,
        observables,
        partition_labels=args.partition,
        max_subcircuit_qubits=args.max_subcircuit_qubits,
        max_coefficients=args.max_coefficients,
    )
    return circuit, plan


def _write_cut_job(args: argparse.Namespace):
    from hybrid_provider.core.cut.job import fingerprint, write_job
    from hybrid_provider.core.provenance import CutRequest

    started = time.perf_counter()
    circuit, plan = _plan(args)
    job_name = args.job or f"job-{fingerprint(circuit, plan, args.batches)[:12]}"
    planned = time.perf_counter() - started
    request = CutRequest(
        parameters=_parameters(args.parameters),
        partition_labels=args.partition,
        max_subcircuit_qubits=args.max_subcircuit_qubits,
        max_coefficients=args.max_coefficients,
        num_batches=args.batches,
    )
    job = write_job(
        circuit, plan, args.store, job_name, args.batches, plan_seconds=planned, request=request
    )
    return plan, job


def _cut(args: argparse.Namespace) -> int:
    plan, job = _write_cut_job(args)
    if args.json:
        _print_json({"manifest_uri": job.manifest_uri, "reused": job.reused, **plan.summary()})
    else:
        _print_plan(plan, job.manifest)
        print(job.manifest_uri)
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    from hybrid_provider.core.execute.batch import run_batch
    from hybrid_provider.core.manifest import load_manifest

    options = _options(args)
    manifest = load_manifest(args.manifest_uri)
    indices = range(manifest.num_batches) if args.all else [args.batch]
    for index in indices:
        report = run_batch(args.manifest_uri, index, options, manifest=manifest)
        how = (
            "result already stored"
            if report.skipped
            else f"{report.duration_s:.2f} s on {report.device}"
        )
        count = report.num_subexperiments
        print(f"batch {index + 1}/{manifest.num_batches} done ({count} subexperiments, {how})")
    return 0


def _workflow(args: argparse.Namespace) -> int:
    """The same compilation the operator does (compile_spec, then compile_workflow)."""
    import yaml

    from hybrid_provider.backends.kubernetes.compile import KubernetesOptions, compile_workflow
    from hybrid_provider.backends.spec import compile_spec, workflow_name
    from hybrid_provider.core.manifest import load_manifest

    if not args.shots:
        args.exact = True  # exact by default in a dry run
    manifest = load_manifest(args.manifest_uri)
    spec = compile_spec(
        manifest,
        args.manifest_uri,
        args.name or workflow_name("cli", manifest.job_name),
        _options(args),
        flavor=args.flavor,
        queue_name=args.queue,
        priority_class=args.priority_class,
    )
    overrides = {"image": args.image, "gpu_image": args.gpu_image}
    options = KubernetesOptions(
        namespace=args.namespace, **{k: v for k, v in overrides.items() if v}
    )
    print(yaml.safe_dump(compile_workflow(spec, options), sort_keys=False), end="")
    return 0


def _submit(args: argparse.Namespace) -> int:
    """What ArgoSubmitOperator does, on the local backend, without Airflow."""
    from hybrid_provider.backends.local import local_quota
    from hybrid_provider.backends.local.backend import LocalBackend
    from hybrid_provider.backends.spec import workflow_name
    from hybrid_provider.core import store
    from hybrid_provider.core.manifest import load_manifest
    from hybrid_provider.placement import decide

    backend = LocalBackend(args.store, quota=local_quota(args.local_quota))
    manifest = load_manifest(args.manifest_uri)
    name = args.name or workflow_name("cli", manifest.job_name)
    store_uri = store.normalise_uri(args.store)
    after = decide.DEFAULT_REPLACE_AFTER_S if args.replace_after is None else args.replace_after
    spec, placement = decide.placed_spec(
        backend, manifest, args.manifest_uri, name, _options(args),
        requested=args.flavor, store_uri=store_uri, replace_after=after,
    )  # fmt: skip
    if args.flavor == "auto":
        decide.write_decision(args.manifest_uri, placement)
    status = backend.submit(spec)
    while args.wait and not status.phase.finished:
        time.sleep(0.2)
        status = backend.status(name)
    if args.wait:
        decide.remember_run(args.manifest_uri, status, store_uri)
    if args.json:
        _print_json({"workflow_name": name, "placement": placement.model_dump(mode="json"),
                     "status": status.model_dump(mode="json")})  # fmt: skip
    else:
        print("\n".join([*placement.lines(), f"{name}: {status.summary_line()}"]))
    return 1 if status.phase.finished and status.phase.value != "Succeeded" else 0


def _reconstruct(args: argparse.Namespace) -> int:
    from hybrid_provider.core.reconstruct.combine import reconstruct_job

    result = reconstruct_job(args.manifest_uri, device=args.device)
    if args.json:
        _print_json(result.as_dict())
    else:
        _print_values(result.observables, result.values, result.std_errors)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from hybrid_provider.core.verify import verify_job

    verification = verify_job(
        args.manifest_uri, batches=args.batches, sample=args.sample, seed=args.sample_seed
    )
    if args.json:
        _print_json(verification.as_dict())
    else:
        for check in verification.checks:
            print(check.line())
        matched = sum(check.matched for check in verification.checks)
        print(f"{matched} of {len(verification.checks)} batch(es) reproduced")
    return 0 if verification.ok else 1


def _metrics(args: argparse.Namespace) -> int:
    """Serve until stopped; each scrape reads the store (hybrid_provider/metrics.py)."""
    from prometheus_client import start_http_server

    from hybrid_provider.metrics import registry

    server, thread = start_http_server(args.port, args.address, registry(args.store))
    print(f"serving metrics of {args.store} on http://{args.address}:{server.server_port}/metrics")
    sys.stdout.flush()
    thread.join()
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from hybrid_provider.core.execute.batch import run_batch
    from hybrid_provider.core.execute.options import DEFAULT_SAMPLER
    from hybrid_provider.core.execute.samplers import resolve_sampler
    from hybrid_provider.core.reconstruct.combine import reconstruct_job

    options = _options(args)
    if options.sampler != DEFAULT_SAMPLER:  # one that cannot run fails before the cut is written
        resolve_sampler(options.sampler)
    if args.in_process:
        return _estimate_in_process(args, options)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    plan, job = _write_cut_job(args)
    timings["cut"] = time.perf_counter() - started
    if not args.json:
        _print_plan(plan, job.manifest)
    mark = time.perf_counter()
    for batch in job.manifest.batches:
        run_batch(job.manifest_uri, batch.index, options, manifest=job.manifest)
    timings["execute"] = time.perf_counter() - mark
    mark = time.perf_counter()
    result = reconstruct_job(job.manifest_uri, device=args.device)
    timings["reconstruct"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    payload: dict[str, Any] = {
        "observables": result.observables,
        "values": result.values,
        "std_errors": result.std_errors,
        "num_subexperiments": job.manifest.num_subexperiments,
        "num_batches": job.manifest.num_batches,
        "mode": options.mode,
        "shots": options.shots,
        "manifest_uri": job.manifest_uri,
        "plan": plan.summary(),
        "timings": {stage: round(seconds, 6) for stage, seconds in timings.items()},
    }
    if args.json:
        _print_json(payload)
        return 0
    _print_values(result.observables, result.values, result.std_errors)
    print("timings: " + ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in timings.items()))
    return 0


def _estimate_in_process(args: argparse.Namespace, options) -> int:
    from hybrid_provider.core.pipeline import estimate_in_process

    started = time.perf_counter()
    _, plan = _plan(args)
    timings = {"cut": time.perf_counter() - started}
    result = estimate_in_process(plan, options, reconstruct_device=args.device)
    timings["execute"] = result.timings["choices"] + result.timings["execute"]
    timings["reconstruct"] = result.timings["reconstruct"]
    timings["total"] = time.perf_counter() - started
    values = result.reconstruction
    if args.json:
        _print_json(
            {
                "observables": values.observables,
                "values": values.values,
                "std_errors": values.std_errors,
                "num_subexperiments": result.num_subexperiments,
                "num_batches": 0,
                "mode": options.mode,
                "shots": options.shots,
                "shot_allocation": options.shot_allocation,
                "manifest_uri": None,
                "plan": plan.summary(),
                "timings": {stage: round(seconds, 6) for stage, seconds in timings.items()},
            }
        )
        return 0
    print(
        f"plan: {plan.num_cuts} cut(s) ({plan.num_gate_cuts} gate, {plan.num_wire_cuts} wire), "
        f"subcircuit widths {plan.subcircuit_widths}, sampling overhead "
        f"{plan.sampling_overhead:.4g}, {result.num_subexperiments} circuits run in process"
    )
    _print_values(values.observables, values.values, values.std_errors)
    print("timings: " + ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in timings.items()))
    return 0


def _print_plan(plan, manifest) -> None:
    print(
        f"plan: {plan.num_cuts} cut(s) ({plan.num_gate_cuts} gate, {plan.num_wire_cuts} wire), "
        f"subcircuit widths {plan.subcircuit_widths}, sampling overhead {plan.sampling_overhead:.4g}, "
        f"{manifest.num_subexperiments} distinct subexperiments "
        f"({manifest.num_subexperiments_redundant} before de-duplication) in {manifest.num_batches} batches"
    )


def _print_values(observables, values, errors) -> None:
    for label, value, error in zip(observables, values, errors, strict=True):
        print(f"<{label}> = {value:+.10f} ± {error:.2e}")


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
