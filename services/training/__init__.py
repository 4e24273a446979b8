"""The training service: labels + Feast point-in-time training sets -> MLflow run -> validation gate."""
