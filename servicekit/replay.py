"""A service run as a replay (`mlops replay`, infra/replay_cli.py): the same module, the same handlers,
three differences, all decided here so no service repeats them.

- It reads a window of the log. The CLI commits the window's first offsets into a fresh consumer group
  before the process starts (so the kit's consumer starts there as from any committed offset), and
  hands the process the window's end offsets, captured when the replay began: records at or after the
  end are dropped unhandled (their offsets are still committed, which is how the CLI sees the end).
- It publishes nothing unless asked: the broker's `publish` counts what it would have sent, per topic,
  and the counts are written to the plan's report file when the broker stops. Dead letters and a
  service's outgoing events alike go through `publish`, so a replay cannot duplicate events downstream.
  The kit's publisher counts them in `mlops_events_withheld_total`, not `mlops_events_published_total`.
- Its state lives elsewhere: the CLI points the state folder, the feature store and the databases at a
  fresh folder through the ordinary settings, so nothing here touches paths.

The plan travels as one JSON setting, `MLOPS_REPLAY` (servicekit/settings.py).
"""

from __future__ import annotations

import atexit
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from faststream.kafka import KafkaBroker
from pydantic import BaseModel, Field

from contracts.common import KafkaCoordinates

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReplayPlan(BaseModel):
    """What a replay process needs to know beyond the service's own settings."""

    group: str = Field(min_length=1, description="The fresh consumer group the replay reads with.")
    stop_offsets: dict[str, dict[int, int]] = Field(
        description="topic -> partition -> end offset captured when the replay began (exclusive)."
    )
    publish: bool = Field(False, description="Publish the service's outgoing events (`--publish`).")
    report: Path | None = Field(None, description="JSON file the withheld-event counts are written to.")

    def within(self, source: KafkaCoordinates) -> bool:
        """A record of a partition the plan does not name is outside the window."""
        end = self.stop_offsets.get(source.topic, {}).get(source.partition)
        return end is not None and source.offset < end


class ReplayBroker(KafkaBroker):
    """The kit's broker for a replay process: publishing is a counter unless the plan says publish."""

    def __init__(self, plan: ReplayPlan, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.withheld: Counter[str] = Counter()
        self.beyond_window = 0
        # Again at exit: shutdown hooks that run after the broker stopped (the audit's last checkpoint)
        # may still count an event.
        atexit.register(self.write_report)

    async def publish(self, message: Any = None, topic: str = "", **kwargs: Any) -> Any:
        if self.plan.publish:
            return await super().publish(message, topic, **kwargs)
        self.withheld[topic] += 1
        return None

    async def stop(self, *args: Any, **kwargs: Any) -> None:
        await super().stop(*args, **kwargs)
        self.write_report()

    def write_report(self) -> None:
        if self.plan.report is None:
            return
        report = {"withheld": dict(self.withheld), "beyond_window": self.beyond_window}
        self.plan.report.parent.mkdir(parents=True, exist_ok=True)
        self.plan.report.write_text(json.dumps(report, indent=2))
        log.info("replay into %s done: withheld %s", self.plan.group, dict(self.withheld))


def withholds(broker: object) -> bool:
    """True when `broker.publish` sends nothing: a replay process not asked to publish."""
    return isinstance(broker, ReplayBroker) and not broker.plan.publish


def keep_in_window(broker: KafkaBroker, items: list[T], raw_of: Callable[[T], Any]) -> list[T]:
    """`items` whose record lies in the replay's window (all of them outside a replay)."""
    if not isinstance(broker, ReplayBroker):
        return items
    kept = [item for item in items if broker.plan.within(raw_of(item).source)]
    broker.beyond_window += len(items) - len(kept)
    return kept
