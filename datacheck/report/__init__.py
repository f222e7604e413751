"""Human-readable output of a run: the console summary (HTML report and CSV to come)."""
