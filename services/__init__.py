"""The platform's services. Each is its own process and package; they never import each other."""
