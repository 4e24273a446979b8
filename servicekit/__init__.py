"""The service kit: what every service shares (settings base, broker, consumer with dead letters,
HTTP app with health/readiness/metrics, API-key roles, logging). Services import this and
`contracts`, never each other."""
