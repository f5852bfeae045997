"""The Kubernetes backend: Argo Workflows whose pods Kueue admits.

``compile`` and ``status`` are pure (no Airflow, no network); ``backend`` talks to the cluster
through the hooks in ``hybrid_provider.hooks.kubernetes``.
"""
