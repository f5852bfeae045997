"""Extra links on task pages: the run's results (and, on Kubernetes, the Argo UI)."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink


class ResultsReportLink(BaseOperatorLink):
    """Where the reconstructed values of this run were written.

    The worker evaluates ``get_link`` when the task ends and stores the URL, so it can read
    what ``execute`` recorded on the operator.
    """

    name = "Results"

    def get_link(self, operator, *, ti_key) -> str:
        return getattr(operator, "results_url", None) or ""


class ArgoWorkflowLink(BaseOperatorLink):
    """The submitted workflow in the Argo UI: ``{base}/workflows/{namespace}/{name}``.

    ``ArgoSubmitOperator.execute`` records the URL (base from the ``hybrid_quantum``
    connection's ``argo_ui_url``, else ``[hybrid_quantum] argo_ui_url``); empty when no
    Argo UI is configured or the backend is local.
    """

    name = "Argo Workflow"

    def get_link(self, operator, *, ti_key) -> str:
        return getattr(operator, "argo_workflow_url", None) or ""
