"""Folds on a Dask cluster, their results back through DVC's run-cache (``foldwise.repro --cluster``)."""
