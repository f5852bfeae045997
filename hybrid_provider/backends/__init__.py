"""Where batches run: the seam between *what runs* (a compiled WorkflowSpec) and *where*.

``submit`` turns a spec into running work, ``status`` reports it in one normalised model,
``stop`` ends it, ``logs`` explains it (``base.WorkflowBackend``). Backends are found through
the entry-point group ``hybrid_quantum.backends``; this package ships two: ``local`` (this
machine, a quota that mirrors a Kueue ClusterQueue) and ``kubernetes`` (Argo Workflows
admitted by Kueue).
"""
