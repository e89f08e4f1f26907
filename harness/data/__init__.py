"""Datasets: what is served to a job (never the holdout) and where it comes from."""
