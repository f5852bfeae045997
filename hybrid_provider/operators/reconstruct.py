"""CupyReconstructOperator: expectation values and standard errors from the batch results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, get_args

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.options import Device
from hybrid_provider.links import ResultsReportLink
from hybrid_provider.operators._common import (
    UsesHybridConnection,
    bad_input_fails_task,
    whole_number,
)
from hybrid_provider.operators._stats import report_reconstruction

if TYPE_CHECKING:
    from hybrid_provider.core.reconstruct.combine import Reconstruction
    from hybrid_provider.core.reconstruct.result import ReconstructionResult


class CupyReconstructOperator(UsesHybridConnection, BaseOperator):
    """Reconstruct on a GPU with CuPy when one is present, with NumPy otherwise.

    Refuses (naming them) when batch results are missing or fail their checksums, so no partial
    answer is published. Writes the values to the job folder and returns them (they are small).

    :param manifest_uri: the cut job.
    :param device: ``auto`` (GPU if present), ``gpu`` or ``cpu``.
    :param verify_sample: rerun this many batches, chosen at random, before publishing, and
        fail the task (no retry) when one does not reproduce its stored outcomes (see
        ``hybrid-quantum verify``); 0 (the default) reruns none.
    """

    template_fields: Sequence[str] = ("manifest_uri", "device", "verify_sample")
    operator_extra_links = (ResultsReportLink(),)
    ui_color = "#d4edda"

    def __init__(
        self,
        *,
        manifest_uri: str,
        device: str = "auto",
        verify_sample: int = 0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("multiple_outputs", True)  # op.output["manifest_uri"] and friends
        super().__init__(**kwargs)
        self.manifest_uri = manifest_uri
        self.device = device
        self.verify_sample = verify_sample
        self.results_url: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from hybrid_provider.core.reconstruct.combine import reconstruct_job
        from hybrid_provider.core.reconstruct.report import exact_or_none
        from hybrid_provider.core.reconstruct.result import ReconstructionResult, write_result

        with bad_input_fails_task():
            if self.device not in get_args(Device):
                raise InputError(
                    f"unknown device '{self.device}': use {', '.join(get_args(Device))}"
                )
            self._verify_sample()
            result = reconstruct_job(self.manifest_uri, device=self.device)
        self._log_provenance(result.mixed_software)
        report_reconstruction(self, result)
        exact = exact_or_none(self.manifest_uri)
        self._log_values(result, exact)
        published = ReconstructionResult.of(self.manifest_uri, result)
        results_uri = write_result(published)
        self.results_url = self._write_report(published, exact) or results_uri
        return {**published.model_dump(mode="json"), "exact": exact, "results_uri": results_uri}

    def _log_values(self, result: Reconstruction, exact: list[float] | None) -> None:
        """Every value with its standard error and, when computable, the exact reference: the
        task's log is where an engineer on call looks first."""
        self.log.info(
            "Reconstructed %d observable(s) in %.3f s with %s (%s mode%s)%s:",
            len(result.values),
            result.seconds,
            result.array_module,
            result.mode,
            f", {result.shots} shots" if result.shots else "",
            "" if exact is None else ", exact values from a statevector of the uncut circuit",
        )
        references: list[float | None] = [None] * len(result.values) if exact is None else [*exact]
        for label, value, error, reference in zip(
            result.observables, result.values, result.std_errors, references, strict=True
        ):
            if reference is None:
                self.log.info("  <%s> = %+.10f ± %.2e", label, value, error)
            else:
                self.log.info(
                    "  <%s> = %+.10f ± %.2e   exact %+.10f   |error| %.2e",
                    label, value, error, reference, abs(value - reference),
                )  # fmt: skip

    def _verify_sample(self) -> None:
        """Rerun a sample of batches first, so a job that does not reproduce publishes nothing."""
        sample = whole_number(self.verify_sample or 0, "verify_sample")
        if sample <= 0:
            return
        from hybrid_provider.core.verify import verify_job

        verification = verify_job(self.manifest_uri, sample=sample)
        for check in verification.checks:
            self.log.info("verify: %s", check.line())
        if not verification.ok:
            failed = [c.index for c in verification.checks if not c.matched]
            raise AirflowFailException(
                f"batch(es) {failed} did not reproduce their stored outcomes (see the verify "
                "lines above); nothing was published. Rerun those batches, or investigate with "
                f"hybrid-quantum verify {self.manifest_uri}"
            )

    def _log_provenance(self, mixed: dict[str, dict[str, list[int]]]) -> None:
        from hybrid_provider.core.manifest import load_manifest

        made = load_manifest(self.manifest_uri).provenance
        origin = made.origin
        self.log.info(
            "Provenance: cut %s by %s; circuit sha256 %s; %s",
            f"in {origin.dag_id}/{origin.run_id}/{origin.task_id}" if origin else "outside Airflow",
            made.host,
            made.circuit_sha256[:16],
            ", ".join(f"{k} {v}" for k, v in sorted(made.software.packages.items())),
        )
        for package, versions in sorted(mixed.items()):
            self.log.warning(
                "Batches ran with different versions of %s: %s",
                package,
                "; ".join(
                    f"{version} in batches {batches}" for version, batches in versions.items()
                ),
            )

    def _write_report(
        self, published: ReconstructionResult, exact: list[float] | None
    ) -> str | None:
        """The results report (HTML + PNG) next to the job; its browser URL for the link.

        The values are already written: a report that cannot be built is logged, not fatal.
        """
        from airflow.sdk import conf

        from hybrid_provider.core.reconstruct.report import write_report
        from hybrid_provider.plugins import report_url

        try:
            html_uri, png_uri = write_report(
                self.manifest_uri,
                published,
                exact=exact,
                airflow_url=conf.get("api", "base_url", fallback="") or "",
            )
        except Exception:
            self.log.warning("Could not build the results report", exc_info=True)
            return None
        url = report_url(html_uri)
        self.log.info("Results report: %s (plot %s); open it at %s", html_uri, png_uri, url)
        return url
