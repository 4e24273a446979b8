"""The annotation service's outside world: its SQLite state, Label Studio, MLflow."""
