"""The platform's services. Each is its own process and package; they never import each other."""

import feature_repo  # noqa: F401  (first: Feast then loads without typeguard's instrumentation)
