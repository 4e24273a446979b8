"""Examples of using the running platform from the outside (not part of the installed packages)."""
