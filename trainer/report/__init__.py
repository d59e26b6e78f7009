"""report.md/report.json and the figures beside the model."""
