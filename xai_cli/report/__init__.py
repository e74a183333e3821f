"""Reports: metrics.json, report.md and a self-contained report.html per run; one table per sweep."""
