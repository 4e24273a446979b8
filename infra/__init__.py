"""Local infrastructure: the Apache Kafka broker, the service supervisor and the `mlops` CLI."""

import feature_repo  # noqa: F401  (first: Feast then loads without typeguard's instrumentation)
