"""An auditor's query of the audit store: its filters, each bound as a parameter."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement

from services.audit.adapters.schema import audit_events as t


@dataclass(frozen=True)
class EventQuery:
    """Filters of an auditor's query; every value is bound as a parameter."""

    event_type: str | None = None
    topic: str | None = None
    entity_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    correlation_id: str | None = None
    prediction_id: str | None = None
    run_id: str | None = None
    event_id: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    after: int = 0
    before: int | None = None
    limit: int = 100
    newest_first: bool = False

    def conditions(self) -> list[ColumnElement[bool]]:
        equal = {
            name: getattr(self, name)
            for name in (
                "event_type",
                "topic",
                "entity_id",
                "model_name",
                "model_version",
                "correlation_id",
                "prediction_id",
                "run_id",
                "event_id",
            )
            if getattr(self, name) is not None
        }
        found: list[ColumnElement[bool]] = [t.c[name] == value for name, value in equal.items()]
        if self.since_us is not None:
            found.append(t.c.occurred_at_us >= self.since_us)
        if self.until_us is not None:
            found.append(t.c.occurred_at_us < self.until_us)
        if self.after:
            found.append(t.c.seq > self.after)
        if self.before is not None:
            found.append(t.c.seq < self.before)
        return found
