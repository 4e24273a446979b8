"""The outside world of the explain service: MLflow, OmniXAI/SHAP/LIME, SQLite, plots."""
