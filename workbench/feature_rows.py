"""Demo applications as the features service's typed feature rows (for benches and tests of the
online store)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def demo_feature_rows(n: int, *, seed: int, id_prefix: str) -> list[dict[str, Any]]:
    """`n` demo applications (workbench.demo_data), each as `services.features.domain.rows.feature_row`
    makes it from a clean record."""
    from services.features.domain.rows import feature_row
    from workbench.demo_data import ApplicationStream

    rows = []
    for app in ApplicationStream(seed=seed, id_prefix=id_prefix).take(n):
        at = datetime.fromisoformat(app.record["applied_at"].replace("Z", "+00:00")).astimezone(UTC)
        rows.append(feature_row(app.record["application_id"], at, app.record))
    return rows
