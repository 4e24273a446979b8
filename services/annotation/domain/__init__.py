"""Pure logic of the annotation service: no Kafka, SQL, HTTP or MLflow."""
