"""Pure audit logic: what a captured message becomes, and the hash chain over it. No SQL, no Kafka."""
