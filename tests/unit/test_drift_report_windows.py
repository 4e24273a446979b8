"""Evidently reports over a requested window of event times (real SQLite, Evidently faked where only the
choice of rows matters): exactly the kept records in [start, end), what pruning may have removed,
coalescing only of requests for the same window, a windowed request surviving a restart, and an
older drift.db upgraded in place. The route is tested in test_drift_report_routes.py."""

from __future__ import annotations

import doctest
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from services.drift.adapters.report_store import ReportStore
from services.drift.domain import report_window
from services.drift.reports import ReportService
from tests.support import wait_until
from tests.unit.drift_helpers import T0, keep, rows
from tests.unit.test_drift_reports import FakeMaker, reports


def day(start_s: int, end_s: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s)


def iso(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_doctests() -> None:
    assert doctest.testmod(report_window).failed == 0


async def test_a_window_selects_exactly_the_kept_records_whose_event_time_is_in_it(tmp_path: Path) -> None:
    kept = rows(100)  # event times T0 + 0..99 s, all kept
    keep(tmp_path, kept)
    maker = FakeMaker()
    made = reports(tmp_path, maker)
    report_id = await made.request("manual", day(10, 30))
    summary = made.make(made.store.requests())
    current, _ = maker.calls[0]
    assert current == [body for _, body in kept[10:30]]  # start included, end (T0 + 30 s) excluded
    assert summary["status"] == "done" and made.get(report_id)["window"] == {
        "requested": {"start": iso(10), "end": iso(30)},
        "rows": 20,
        "first_seq": 11,
        "last_seq": 30,
        "start": iso(10),
        "end": iso(29),
        "pruned_records": 0,
        "may_be_incomplete": False,
        "note": "every clean record seen is still kept: the window held all of its records seen so far",
    }
    assert made.reported_seq == 0  # an older window leaves the latest records to the schedule


async def test_a_window_says_when_pruning_may_have_removed_its_records(tmp_path: Path) -> None:
    keep(tmp_path, rows(400), kept=100, first_kept=20)  # kept: T0 + 0..19 s and T0 + 300..399 s
    made = reports(tmp_path)
    for window in (day(0, 400), day(350, 400), day(100, 200)):
        await made.request("manual", window)
        made.make(made.store.requests())
    empty, latest, whole = (r for r in made.listing(10)["reports"])  # newest first
    assert whole["window"]["rows"] == 120 and whole["window"]["pruned_records"] == 280
    assert whole["window"]["may_be_incomplete"] is True and "may be missing" in whole["window"]["note"]
    assert iso(300) in whole["window"]["note"]  # where the latest kept records start
    assert latest["window"]["rows"] == 50 and latest["window"]["may_be_incomplete"] is False
    assert empty["status"] == "failed" and empty["window"]["rows"] == 0
    assert empty["error"].startswith(f"no kept clean record has an event time in [{iso(100)}, {iso(200)})")
    assert "280 clean records were pruned" in empty["error"]


async def test_coalescing_merges_only_requests_for_the_same_window(tmp_path: Path) -> None:
    keep(tmp_path, rows(100))
    maker = FakeMaker()
    made = reports(tmp_path, maker, interval_s=0)
    asked = [
        await made.request("manual"),
        await made.request("manual", day(0, 50)),
        await made.request("schedule"),
        await made.request("manual", day(0, 50)),
        await made.request("manual", day(50, 100)),
    ]
    await made.start()  # the worker takes the oldest request and every one of its window, then the next
    try:
        await wait_until(lambda: made.counts["made"] == 3, what="three reports")
    finally:
        await made.stop(timeout_s=5)
    assert made.counts == {"made": 3, "failed": 0, "coalesced": 2} and made.store.requests() == []
    assert [len(current) for current, _ in maker.calls] == [50, 50, 50]  # latest 50, then each half
    latest, first_half, second_half = (made.get(i) for i in (asked[0], asked[1], asked[4]))
    assert [c["id"] for c in latest["coalesced"]] == [asked[2]] and "requested" not in latest["window"]
    assert [c["id"] for c in first_half["coalesced"]] == [asked[3]]
    assert first_half["window"]["requested"] == {"start": iso(0), "end": iso(50)}
    assert second_half["coalesced"] == [] and second_half["window"]["first_seq"] == 51
    assert made.get(asked[3])["id"] == asked[1] and made.reported_seq == 100


async def test_a_windowed_request_left_by_a_crash_is_made_after_the_restart(tmp_path: Path) -> None:
    keep(tmp_path, rows(100))
    before = reports(tmp_path)
    report_id = await before.request("manual", day(20, 40))  # queued, never made: the process died
    before.store.close()
    after = reports(tmp_path, interval_s=0)
    await after.start()
    try:
        await wait_until(lambda: after.store.summary(report_id) is not None, what="the queued report")
    finally:
        await after.stop(timeout_s=5)
    window = after.get(report_id)["window"]
    assert window["requested"] == {"start": iso(20), "end": iso(40)} and window["rows"] == 20


def test_an_older_drift_db_gains_the_window_columns_and_keeps_its_requests(tmp_path: Path) -> None:
    keep(tmp_path, rows(60))
    db = sqlite3.connect(tmp_path / "drift.db")  # the request table as the previous release left it
    db.executescript(
        """
        DROP TABLE report_requests;
        CREATE TABLE report_requests (id TEXT PRIMARY KEY, trigger TEXT NOT NULL, at REAL NOT NULL,
            feature TEXT);
        INSERT INTO report_requests VALUES ('old', 'manual', 1.0, NULL);
        """
    )
    db.commit()
    db.close()
    made: ReportService = reports(tmp_path)
    columns = {
        r[1] for r in sqlite3.connect(tmp_path / "drift.db").execute("PRAGMA table_info(report_requests)")
    }
    assert {"window_start", "window_end"} <= columns
    assert made.store.requests() == [("old", "manual", None)]
    made.store.request("new", "manual", (T0.timestamp(), T0.timestamp() + 10))
    old = made.make(made.store.requests())
    new = made.make(made.store.requests())
    assert old["id"] == "old" and old["window"]["rows"] == 50 and "requested" not in old["window"]
    assert new["id"] == "new" and new["window"]["rows"] == 10 and old["coalesced"] == []
    again = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=20)  # migrating twice
    assert again.requests() == []
