import feature_repo  # noqa: F401  (first: Feast then loads without typeguard's instrumentation)
