"""Pure helpers of a report over a requested window of event times: the summary's `window` (the bounds
asked for, the kept rows it held, and whether pruning may have removed some of its records), and the
error of a window that held none. Times are epoch seconds here, ISO-8601 UTC in what is returned.

The kept records are bounded (adapters/report_store.py): the first `first_kept` seen stay for good,
and of the rest only the latest. Records dropped in between were seen before the latest kept ones
(arrival order), so a window starting before the earliest event time of the latest kept records may
have lost some; one starting after it has lost none, unless records arrived out of order.

>>> w = describe_window((0.0, 86400.0), {"rows": 0}, {"pruned": 5, "latest_from": 3600.0}, 10)
>>> w["requested"], w["rows"], w["may_be_incomplete"]
({'start': '1970-01-01T00:00:00+00:00', 'end': '1970-01-02T00:00:00+00:00'}, 0, True)
>>> describe_window((7200.0, 9000.0), {"rows": 3}, {"pruned": 5, "latest_from": 3600.0}, 10)[
...     "may_be_incomplete"]
False
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def describe_window(asked: tuple[float, float], bounds: Row, pruning: Row, first_kept: int) -> Row:
    """The summary's `window`: `requested` (start, end), the rows it held (`rows`, and when any,
    `first_seq`, `last_seq` in arrival order and `start`, `end` their event times), `pruned_records`,
    `may_be_incomplete` and a `note` that says what the store keeps."""
    pruned, latest_from = pruning["pruned"], pruning["latest_from"]
    incomplete = pruned > 0 and (latest_from is None or asked[0] < latest_from)
    if not pruned:
        note = "every clean record seen is still kept: the window held all of its records seen so far"
    else:
        kept = (
            f"{pruned} clean records were pruned (kept: the first {first_kept} seen and the latest ones, "
            f"whose event times start at {iso(latest_from)})"
        )
        note = kept + (
            ": records of this window before then may be missing"
            if incomplete
            else ": the window starts after then, so none of its records were pruned unless they came late"
        )
    used = {k: iso(v) if k in ("start", "end") else v for k, v in bounds.items()}
    return {
        "requested": {"start": iso(asked[0]), "end": iso(asked[1])},
        **used,
        "pruned_records": pruned,
        "may_be_incomplete": incomplete,
        "note": note,
    }


def empty_window_error(window: Row) -> str:
    """Why a report of a requested window that held no kept record cannot be made."""
    asked = window["requested"]
    return f"no kept clean record has an event time in [{asked['start']}, {asked['end']}); {window['note']}"
