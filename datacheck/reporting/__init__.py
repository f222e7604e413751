"""Human-readable output of a run: the console summary, JUnit XML, the HTML report and findings.csv."""
