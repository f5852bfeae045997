"""A results report for one cut job: a small HTML page and a PNG plot, written next to the job.

The page shows what the run computed and how: the cut plan, every reconstructed value with its
standard error (and the exact value when the circuit is small enough to simulate whole), the
time spent per stage and per batch. The plot shows the values with error bars next to the exact
values, and the stage times. Everything comes from the store (manifest, batch records,
``results/reconstruction.json``), so the report can be rebuilt later from the job alone.

No Airflow here: the operator calls :func:`write_report`, and so can anyone with a job URI.
"""

from __future__ import annotations

import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

from hybrid_provider.core import layout, store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.manifest import JobManifest, artifact_uri, load_manifest
from hybrid_provider.core.provenance import Software, mixed_software
from hybrid_provider.core.reconstruct.result import ReconstructionResult, read_result, result_uri

log = logging.getLogger(__name__)

REPORT_HTML, REPORT_PNG = layout.REPORT_HTML, layout.REPORT_PNG
RESULTS_JSON = layout.RECONSTRUCTION_RESULT
#: Every batch's way through the queue, as the wait saw it (``sensors.kueue_wait``).
TIMELINE_JSON = layout.TIMELINE
#: Files of a job that may be shown to a browser (the Airflow plugin serves only these).
REPORT_FILES = (REPORT_HTML, REPORT_PNG, RESULTS_JSON, TIMELINE_JSON)


@dataclass(frozen=True)
class BatchTiming:
    """One batch as the report shows it; None where the batch has no valid record."""

    index: int
    num_subexperiments: int
    duration_s: float | None
    device: str | None
    finished_at: datetime | None
    ran_in: str | None = None
    flavor: str | None = None
    software: Software | None = None


@dataclass(frozen=True)
class BatchSpan:
    """One batch's way through the queue (from the timeline): queued, started, finished."""

    index: int
    flavor: str
    pending_since: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    preemptions: int

    @property
    def queued_s(self) -> float | None:
        if self.pending_since is None or self.started_at is None:
            return None
        return max(0.0, (self.started_at - self.pending_since).total_seconds())


class StageTimes(NamedTuple):
    """Where the run's wall time went: ``stages`` add up to ``wall_s``; ``compute_s`` (the
    batches' compute summed) overlaps them and is shown apart."""

    stages: dict[str, float]
    wall_s: float
    compute_s: float


@dataclass(frozen=True)
class ReportData:
    """Everything the page and the plot show, gathered from the store."""

    manifest: JobManifest
    manifest_uri: str
    observables: list[str]
    values: list[float]
    std_errors: list[float]
    exact: list[float] | None
    mode: str
    shots: int | None
    array_module: str
    reconstruct_seconds: float
    batches: list[BatchTiming]
    title: str = "Circuit cutting results"
    links: dict[str, str] = field(default_factory=dict)
    timeline: list[BatchSpan] = field(default_factory=list)
    #: The ``flavor="auto"`` decision and its reasons, as the timeline carries them.
    placement: list[str] = field(default_factory=list)
    reconstructed_at: datetime | None = None
    #: Airflow's ``[api] base_url`` ("" for links relative to the UI's origin); None: no links.
    airflow_url: str | None = None

    @property
    def batch_seconds(self) -> float:
        return sum(b.duration_s or 0.0 for b in self.batches)

    @property
    def last_batch_finished(self) -> datetime | None:
        """From the timeline when there is one (as the first start is), else the records."""
        moments = [b.finished_at for b in self.timeline if b.finished_at] or [
            b.finished_at for b in self.batches if b.finished_at
        ]
        return max(moments) if moments else None

    @property
    def mixed_software(self) -> dict[str, dict[str, list[int]]]:
        """Packages whose version differs between batches (see ``provenance.mixed_software``)."""
        return mixed_software({b.index: b.software for b in self.batches if b.software})

    @property
    def first_batch_started(self) -> datetime | None:
        """From the timeline when there is one; otherwise from the records (end − duration)."""
        moments = [b.started_at for b in self.timeline if b.started_at] or [
            b.finished_at - timedelta(seconds=b.duration_s)
            for b in self.batches
            if b.finished_at and b.duration_s is not None
        ]
        return min(moments) if moments else None

    def stage_times(self) -> StageTimes:
        """The run's wall time split into stages that follow one another, so they add up:
        the cut, the wait until the first batch started (Airflow's scheduling and the submit,
        then the wait for quota: apart when the timeline says when batches were queued),
        execution from the first batch's start to the last one's end, the gap until
        reconstruction began, and reconstruction. Without a moment a stage needs (a missing
        record, a reconstruction written without its end time) it is left out."""
        stages: dict[str, float] = {}
        if self.manifest.cut_seconds is not None:
            stages["cut: plan, generate, write"] = self.manifest.cut_seconds
        written = _aware(self.manifest.created_at)
        first, last = self.first_batch_started, self.last_batch_finished
        queued = min((b.pending_since for b in self.timeline if b.pending_since), default=None)
        if first is not None and last is not None:
            if queued is not None and written <= queued <= first:  # the timeline splits the wait
                stages["scheduling: cut written → batches queued"] = _seconds(written, queued)
                stages["queue: batches queued → first batch started"] = _seconds(queued, first)
            else:
                stages["waiting: cut written → first batch started"] = _seconds(written, first)
            stages["execute: first batch started → last finished"] = _seconds(first, last)
            if self.reconstructed_at is not None:
                began = self.reconstructed_at - timedelta(seconds=self.reconstruct_seconds)
                stages["gap: last batch finished → reconstruction"] = _seconds(last, began)
        stages["reconstruct"] = self.reconstruct_seconds
        return StageTimes(stages, sum(stages.values()), self.batch_seconds)

    def airflow_links(self) -> dict[str, str]:
        """The Airflow run and the task that cut the job, in Airflow's UI."""
        origin = self.manifest.provenance.origin
        if origin is None or self.airflow_url is None:
            return {}
        run = (
            f"{self.airflow_url.rstrip('/')}/dags/{quote(origin.dag_id, safe='')}"
            f"/runs/{quote(origin.run_id, safe='')}"
        )
        return {
            f"run {origin.run_id}": run,
            f"task {origin.task_id}": f"{run}/tasks/{quote(origin.task_id, safe='')}",
        }


def _seconds(start: datetime, end: datetime) -> float:
    """Seconds between two moments, never negative (clocks of two machines may disagree)."""
    return max(0.0, (end - start).total_seconds())


def report_uris(manifest_uri: str) -> tuple[str, str]:
    """Where the report of a job lives: (HTML, PNG)."""
    manifest_uri = store.normalise_uri(manifest_uri)
    return artifact_uri(manifest_uri, REPORT_HTML), artifact_uri(manifest_uri, REPORT_PNG)


def gather(
    manifest_uri: str,
    reconstruction: ReconstructionResult | None = None,
    *,
    exact: Sequence[float] | None | str = "auto",
    title: str | None = None,
    links: Mapping[str, str] | None = None,
    airflow_url: str | None = None,
) -> ReportData:
    """Read what the report shows. ``reconstruction`` defaults to ``results/reconstruction.json``.

    ``exact="auto"`` computes exact values on the uncut circuit when it is small enough
    (see :mod:`hybrid_provider.core.reconstruct.reference`); pass a list to supply them, or
    None to leave them out. ``airflow_url``: Airflow's ``[api] base_url``, to link the run
    that made the job ("" for links relative to the UI; None for none).
    """
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = load_manifest(manifest_uri)
    if reconstruction is None:
        reconstruction = read_result(result_uri(manifest_uri))
    if exact == "auto":
        exact = exact_or_none(manifest_uri)
    observables = reconstruction.observables
    if exact is not None and len(exact) != len(observables):
        raise ValueError(f"{len(exact)} exact values given for {len(observables)} observables")
    return ReportData(
        manifest=manifest,
        manifest_uri=manifest_uri,
        observables=observables,
        values=reconstruction.values,
        std_errors=reconstruction.std_errors,
        exact=None if exact is None else [float(v) for v in exact],
        mode=reconstruction.mode,
        shots=reconstruction.shots,
        array_module=reconstruction.array_module,
        reconstruct_seconds=reconstruction.seconds,
        batches=_batch_timings(manifest_uri, manifest),
        title=title or _title(manifest),
        links=dict(links or {}),
        timeline=read_timeline(manifest_uri),
        placement=read_placement(manifest_uri),
        reconstructed_at=reconstruction.finished_at,
        airflow_url=airflow_url,
    )


def _title(manifest: JobManifest) -> str:
    """The Airflow run as Airflow shows it (the job path has it made safe for file names)."""
    origin = manifest.provenance.origin
    if origin is None:
        return f"Circuit cutting results: {manifest.job_name}"
    return f"Circuit cutting results: {origin.dag_id}, run {origin.run_id}"


def _moment(text: str | None) -> datetime | None:
    return None if not text else _aware(datetime.fromisoformat(text))


def read_timeline(manifest_uri: str) -> list[BatchSpan]:
    """The job's timeline (``results/timeline.json``), or none when the wait wrote none."""
    uri = artifact_uri(store.normalise_uri(manifest_uri), TIMELINE_JSON)
    try:
        document = store.read_json(uri, what="timeline")
    except ArtifactError:
        return []
    return [
        BatchSpan(
            index=int(b["index"]),
            flavor=str(b["flavor"]),
            pending_since=_moment(b.get("pending_since")),
            started_at=_moment(b.get("started_at")),
            finished_at=_moment(b.get("finished_at")),
            attempts=int(b.get("attempts") or 0),
            preemptions=len(b.get("preemptions") or []),
        )
        for b in document.get("batches", [])
    ]


def write_report(
    manifest_uri: str,
    reconstruction: ReconstructionResult | None = None,
    *,
    exact: Sequence[float] | None | str = "auto",
    title: str | None = None,
    links: Mapping[str, str] | None = None,
    airflow_url: str | None = None,
) -> tuple[str, str]:
    """Build the report of a finished job and write it next to it; returns (HTML, PNG) URIs."""
    data = gather(
        manifest_uri, reconstruction, exact=exact, title=title, links=links,
        airflow_url=airflow_url,
    )  # fmt: skip
    html_uri, png_uri = report_uris(data.manifest_uri)
    store.write_bytes_atomic(png_uri, render_png(data))
    store.write_bytes_atomic(html_uri, render_html(data).encode())
    return html_uri, png_uri


def exact_or_none(manifest_uri: str) -> list[float] | None:
    """The exact reference for a job, or None (too wide, or not computable: logged, not raised,
    since a missing reference must not cost the results it would only check)."""
    from hybrid_provider.core.reconstruct.reference import exact_expectation_values

    try:
        return exact_expectation_values(manifest_uri)
    except (ArtifactError, MemoryError, ValueError) as exc:
        log.warning("No exact reference for the report: %s", exc)
        return None


def _batch_timings(manifest_uri: str, manifest: JobManifest) -> list[BatchTiming]:
    from hybrid_provider.core.execute.record import read_record

    timings = []
    for batch in manifest.batches:
        try:
            record = read_record(manifest_uri, batch.index)
        except ArtifactError:
            timings.append(BatchTiming(batch.index, batch.count, None, None, None))
            continue
        executor = record.provenance.executor
        timings.append(
            BatchTiming(
                index=batch.index,
                num_subexperiments=batch.count,
                duration_s=record.duration_s,
                device=record.provenance.device,
                finished_at=_aware(record.finished_at),
                ran_in=f"pod {executor.pod}" if executor.pod else f"host {executor.host}",
                flavor=executor.flavor,
                software=record.provenance.software,
            )
        )
    return timings


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- the plot


def render_png(data: ReportData) -> bytes:
    """Values with error bars (and exact values), stage times, batch times: one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any thread

    figure = Figure(figsize=(12, 4.2), dpi=100, layout="constrained")
    values_ax, stages_ax, batches_ax = figure.subplots(
        1, 3, gridspec_kw={"width_ratios": [2.2, 1.3, 1.2]}
    )
    positions = list(range(len(data.observables)))
    values_ax.errorbar(
        positions,
        data.values,
        yerr=data.std_errors,
        fmt="o",
        color="#1f77b4",
        ecolor="#1f77b4",
        capsize=5,
        label="reconstructed ± 1 s.e.",
    )
    if data.exact is not None:
        values_ax.scatter(
            positions, data.exact, marker="x", s=70, color="#d62728", zorder=3, label="exact"
        )
    values_ax.axhline(0.0, color="#999999", linewidth=0.6)
    values_ax.set_xticks(positions, [_short(o) for o in data.observables], rotation=25)
    values_ax.tick_params(axis="x", labelsize=8)
    values_ax.set_xlim(-0.6, len(positions) - 0.4)
    values_ax.set_ylabel("expectation value")
    mode = data.mode + (f", {data.shots} shots" if data.shots else "")
    values_ax.set_title(f"Reconstructed values ({mode})")
    values_ax.legend(loc="best", fontsize=8)

    _draw_stages(stages_ax, data.stage_times())
    if data.timeline:
        _draw_timeline(batches_ax, data)
    else:
        batch_seconds = [b.duration_s or 0.0 for b in data.batches]
        batches_ax.bar([b.index for b in data.batches], batch_seconds, color="#74c476")
        batches_ax.set_xlabel("batch")
        batches_ax.set_ylabel("seconds")
        batches_ax.set_title(f"Time per batch ({len(data.batches)})")

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_stages(axes: Any, times: StageTimes) -> None:
    """The stages in order, then their total (the wall time) and the compute summed over
    batches, which overlaps the stages and is drawn apart."""
    names = [*times.stages, "total: wall time", "batch compute (sum, overlaps)"]
    seconds = [*times.stages.values(), times.wall_s, times.compute_s]
    colours = ["#6baed6"] * len(times.stages) + ["#3182bd", "#bdbdbd"]
    axes.barh(range(len(names)), seconds, color=colours)
    axes.set_yticks(range(len(names)), [n.replace(": ", ":\n", 1) for n in names])
    axes.tick_params(axis="y", labelsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("seconds")
    axes.set_title("Time per stage")
    for row, value in enumerate(seconds):
        axes.text(value, row, f" {value:.3g} s", va="center", fontsize=7)
    axes.margins(x=0.35)


def _draw_timeline(axes: Any, data: ReportData) -> None:
    """A Gantt chart: each batch's wait for quota and its run, from the moment the cut
    was written."""
    origin = _aware(data.manifest.created_at)
    for span in data.timeline:
        if span.pending_since and span.started_at:
            start = _seconds(origin, span.pending_since)
            axes.barh(span.index, span.queued_s, left=start, color="#fdae6b", label="queued")
        if span.started_at and span.finished_at:
            start = _seconds(origin, span.started_at)
            axes.barh(span.index, _seconds(span.started_at, span.finished_at), left=start,
                      color="#74c476", label="running")  # fmt: skip
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), loc="lower right", fontsize=7)
    axes.set_yticks([span.index for span in data.timeline])
    axes.tick_params(axis="y", labelsize=7)
    axes.invert_yaxis()
    axes.set_ylabel("batch")
    axes.set_xlabel("seconds after the cut was written")
    axes.set_xlim(left=0)
    axes.set_title(f"Batches in the queue ({len(data.timeline)})")


def _short(label: str) -> str:
    """``IIIIIZZIIIII`` → ``Z5 Z6`` (qubit numbers; the rightmost letter acts on qubit 0)."""
    if "I" not in label or set(label) == {"I"}:
        return label if len(label) <= 14 else label[:13] + "…"
    terms = [f"{p}{q}" for q, p in enumerate(reversed(label)) if p != "I"]
    text = " ".join(terms)
    return text if len(text) <= 18 else text[:17] + "…"


# --------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: 0.4rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, td.obs { font-family: ui-monospace, monospace; }
img { max-width: 100%; border: 1px solid #ddd; }
.muted { color: #666; font-size: 0.9rem; }
.warning { color: #8a4b00; background: #fff4e0; padding: 0.3rem 0.6rem; }
"""


def render_html(data: ReportData) -> str:
    """A self-contained page (styles inline, the plot by relative URL, no scripts)."""
    e = html.escape
    manifest, plan = data.manifest, data.manifest.plan
    mode = data.mode + (f", {data.shots} shots per subexperiment" if data.shots else "")
    widths = ", ".join(f"{label}: {w}" for label, w in plan.subcircuit_widths.items())
    plan_rows = [
        ("qubits", plan.num_qubits),
        ("partition labels", plan.partition_labels),
        ("cuts", f"{plan.num_cuts} ({plan.num_gate_cuts} gate, {plan.num_wire_cuts} wire)"),
        ("subcircuit widths", widths),
        ("sampling overhead", f"{plan.sampling_overhead:.6g}"),
        ("QPD coefficients", plan.num_coefficients),
        ("distinct subexperiments", manifest.num_subexperiments),
        ("subexperiments without de-duplication", manifest.num_subexperiments_redundant),
        ("batches", manifest.num_batches),
    ]
    value_head = ["observable", "on the plot", "reconstructed", "standard error"]
    if data.exact is not None:
        value_head += ["exact", "|error|", "error / s.e."]
    value_rows = []
    for i, label in enumerate(data.observables):
        value, error = data.values[i], data.std_errors[i]
        cells = [
            f'<td class="obs">{e(label)}</td>',
            f'<td class="obs">{e(_short(label))}</td>',
            _num(f"{value:+.10f}"),
            _num(f"{error:.3e}"),
        ]
        if data.exact is not None:
            deviation = abs(value - data.exact[i])
            ratio = deviation / error if error > 0 else math.inf if deviation > 1e-9 else 0.0
            cells += [
                _num(f"{data.exact[i]:+.10f}"),
                _num(f"{deviation:.3e}"),
                _num("—" if math.isinf(ratio) else f"{ratio:.2f}"),
            ]
        value_rows.append("<tr>" + "".join(cells) + "</tr>")
    times = data.stage_times()
    stage_rows = [
        f"<tr><td>{e(name)}</td>{_num(f'{seconds:.3f}')}</tr>"
        for name, seconds in times.stages.items()
    ]
    stage_rows += [
        f"<tr><th>total: wall time (the stages above)</th>{_num(f'{times.wall_s:.3f}')}</tr>",
        f'<tr class="muted"><td>batch compute, summed over batches (runs during the stages '
        f"above, not added to them)</td>{_num(f'{times.compute_s:.3f}')}</tr>",
    ]
    batch_rows = [
        "<tr>"
        + _num(str(b.index))
        + _num(str(b.num_subexperiments))
        + f"<td>{e(b.device or '—')}</td>"
        + f"<td>{e(b.flavor or '—')}</td>"
        + f"<td>{e(b.ran_in or '—')}</td>"
        + _num("—" if b.duration_s is None else f"{b.duration_s:.3f}")
        + f"<td>{e(b.finished_at.isoformat(timespec='seconds') if b.finished_at else '—')}</td>"
        + "</tr>"
        for b in data.batches
    ]
    links = "".join(
        f'<li><a href="{e(url, quote=True)}">{e(text)}</a></li>' for text, url in data.links.items()
    )
    airflow = " · ".join(
        f'<a href="{e(url, quote=True)}">{e(text)}</a>'
        for text, url in data.airflow_links().items()
    )
    exact_note = (
        "Exact values: statevector simulation of the uncut circuit."
        if data.exact is not None
        else "No exact values (the circuit is too wide to simulate whole, or none were given)."
    )
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(data.title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{e(data.title)}</h1>
{f'<p id="airflow">In Airflow: {airflow}</p>' if airflow else ""}
<p class="muted">Job <code>{e(manifest.job_name)}</code>, cut at
{e(_aware(manifest.created_at).isoformat(timespec="seconds"))}; {e(mode)}; reconstructed with
<code>{e(data.array_module)}</code>. Report generated {e(generated)}.</p>
<h2>Reconstructed expectation values</h2>
<table id="values">
<tr>{"".join(f"<th>{e(h)}</th>" for h in value_head)}</tr>
{chr(10).join(value_rows)}
</table>
<p class="muted">{e(exact_note)} Standard errors come from shot noise (zero in exact mode).
"On the plot": the observable's non-identity letters with their qubits (the rightmost letter
of the label acts on qubit 0).</p>
<img src="{REPORT_PNG}" alt="Reconstructed values with error bars, and time per stage">
<h2>Cut plan</h2>
<table id="plan">
{chr(10).join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in plan_rows)}
</table>
<h2>Time per stage (seconds)</h2>
<table id="stages">
{chr(10).join(stage_rows)}
</table>
<h2>Batches</h2>
<table id="batches">
<tr><th>batch</th><th>subexperiments</th><th>device</th><th>flavor</th><th>ran in</th>
<th>seconds</th><th>finished</th></tr>
{chr(10).join(batch_rows)}
</table>
{render_placement(data)}
{render_timeline(data)}
{render_provenance(data)}
<h2>Files</h2>
<ul>
<li><a href="{RESULTS_JSON}">{RESULTS_JSON}</a> (values as JSON)</li>
{links}
</ul>
<p class="muted">Manifest: <code>{e(data.manifest_uri)}</code></p>
</body>
</html>
"""


def read_placement(manifest_uri: str) -> list[str]:
    """The placement decision's lines from the timeline; none when the flavor was named."""
    uri = artifact_uri(store.normalise_uri(manifest_uri), TIMELINE_JSON)
    try:
        return list(store.read_json(uri, what="timeline").get("placement") or [])
    except ArtifactError:
        return []


def render_placement(data: ReportData) -> str:
    """Where ``flavor="auto"`` put the batches, and the numbers it compared."""
    if not data.placement:
        return ""
    lines = html.escape("\n".join(data.placement))
    return f"""<h2>Placement</h2>
<pre id="placement">{lines}</pre>"""


def render_timeline(data: ReportData) -> str:
    """Every batch's way through the queue, as the wait recorded it; nothing without one."""
    if not data.timeline:
        return ""
    e = html.escape

    def moment(value: datetime | None) -> str:
        return f"<td>{e(value.isoformat(timespec='milliseconds')) if value else '—'}</td>"

    rows = [
        "<tr>"
        + _num(str(b.index))
        + f"<td>{e(b.flavor)}</td>"
        + moment(b.pending_since)
        + moment(b.started_at)
        + moment(b.finished_at)
        + _num("—" if b.queued_s is None else f"{b.queued_s:.3f}")
        + _num(str(b.attempts))
        + _num(str(b.preemptions))
        + "</tr>"
        for b in data.timeline
    ]
    return f"""<h2>Timeline</h2>
<table id="timeline">
<tr><th>batch</th><th>flavor</th><th>queued</th><th>started</th><th>finished</th>
<th>seconds in queue</th><th>attempts</th><th>preemptions</th></tr>
{chr(10).join(rows)}
</table>
<p class="muted">From <a href="{TIMELINE_JSON}">{TIMELINE_JSON}</a>, written by the wait at the
end of its try; times in UTC, the last attempt's.</p>"""


def render_provenance(data: ReportData) -> str:
    """What made the numbers: origin, circuit, software at the cut and in the batches."""
    e = html.escape
    provenance = data.manifest.provenance
    origin = provenance.origin
    rows = [
        (
            "Airflow task",
            f"{origin.dag_id} / {origin.run_id} / {origin.task_id}" if origin else "—",
        ),
        ("circuit (QPY sha256)", provenance.circuit_sha256),
        ("parameters", _parameters_text(provenance.request.parameters)),
        ("cut on", provenance.host),
    ]
    batch_versions: dict[str, set[str]] = {}
    for batch in data.batches:
        if batch.software:
            for name, version in {
                "python": batch.software.python,
                **batch.software.packages,
            }.items():
                batch_versions.setdefault(name, set()).add(version)
    cut_versions = {"python": provenance.software.python, **provenance.software.packages}
    mixed = data.mixed_software
    software_rows = [
        f"<tr><td>{e(name)}</td><td>{e(cut_versions.get(name, '—'))}</td>"
        f"<td>{e(', '.join(sorted(batch_versions.get(name, ()))) or '—')}</td>"
        f"<td>{'differs between batches' if name in mixed else ''}</td></tr>"
        for name in sorted(cut_versions.keys() | batch_versions.keys())
    ]
    warning = (
        f'<p class="warning">Batches ran with different versions of {e(", ".join(sorted(mixed)))}'
        ": the values may not be reproducible as a whole.</p>"
        if mixed
        else ""
    )
    return f"""<h2>Provenance</h2>
<table id="provenance">
{chr(10).join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in rows)}
</table>
{warning}
<table id="software">
<tr><th>package</th><th>at the cut</th><th>in the batches</th><th></th></tr>
{chr(10).join(software_rows)}
</table>
<p class="muted">Check that a rerun matches: <code>hybrid-quantum verify {e(data.manifest_uri)}</code></p>"""


def _parameters_text(parameters: list[float] | dict[str, float] | None) -> str:
    if isinstance(parameters, dict):
        return ", ".join(f"{name}={value!r}" for name, value in parameters.items()) or "—"
    return ", ".join(map(repr, parameters or [])) or "—"


def _num(text: str) -> str:
    return f'<td class="num">{html.escape(text)}</td>'
