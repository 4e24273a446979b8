"""Local infrastructure: the Apache Kafka broker, the service supervisor and the `mlops` CLI."""
