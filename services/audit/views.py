"""How stored rows are shown to auditors: JSON objects and CSV lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from services.audit.domain.entry import from_micros

FIELDS = (
    "seq", "kind", "event_id", "event_type", "schema_version", "occurred_at", "producer",
    "correlation_id", "causation_id", "entity_id", "model_name", "model_version", "prediction_id",
    "run_id", "topic", "partition", "offset", "kafka_timestamp_ms", "key_sha256", "value_sha256",
    "size", "note", "recorded_at", "row_hash",
)  # fmt: skip


def row_view(row: dict[str, Any]) -> dict[str, Any]:
    """One row for an auditor: times as ISO 8601 (UTC), the event body as JSON (null for raw rows)."""
    view = {name: row.get(name) for name in FIELDS}
    view["occurred_at"] = _iso(row.get("occurred_at_us"))
    view["recorded_at"] = _iso(row.get("recorded_at_us"))
    view["kafka_timestamp_ms"] = row.get("kafka_ts_ms")
    view["event"] = json.loads(row["body"]) if row.get("body") else None
    return view


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """CSV with a header; the event body is one JSON column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*FIELDS, "event"])
    for row in rows:
        view = row_view(row)
        writer.writerow([_cell(view[name]) for name in FIELDS] + [row.get("body") or ""])
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    # Spreadsheet formula injection: a cell starting with = + - @ is shown as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def _iso(micros: int | None) -> str | None:
    return from_micros(micros).isoformat() if micros is not None else None
