"""Pure logic of the explain service: no Kafka, SQL, HTTP or MLflow imports."""
