"""Evidently reports of the drift service: the bounded record window and the champion's reference
(real SQLite), the summary read from a real Evidently run, one report at a time with coalescing, and
drift events that name their report. Routes are in test_drift_report_routes.py."""

from __future__ import annotations

import asyncio
import doctest
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.events import (
    GateEvidence,
    ModelPromoted,
    ModelPromotedPayload,
    ModelTrained,
    ModelTrainedPayload,
)
from services.drift.adapters.evidently_report import EvidentlyResult, drift_report
from services.drift.adapters.report_store import ReportStore
from services.drift.domain import report_summary
from services.drift.domain.report_summary import sample_evenly, summarize
from services.drift.errors import ReportPending, UnknownReport
from services.drift.reports import MIN_REFERENCE, ReportService
from tests.support import wait_until
from tests.unit.drift_helpers import T0, keep, reporting_harness, rows
from tests.unit.test_drift_service import feed_records

SOURCE: Any = None


class FakeMaker:
    """Stands in for Evidently where only the choice of rows matters."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    def __call__(
        self, current: Any, reference: Any, numeric: Any, categorical: Any, flagged: Any
    ) -> EvidentlyResult:
        self.calls.append((current, reference))
        if not current:
            raise ValueError("no records")
        return EvidentlyResult("<html>fake</html>", "{}", summarize({}), [])


def reports(tmp_path: Path, maker: Any = None, **kw: Any) -> ReportService:
    store = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=kw.pop("first_kept", 20))
    return ReportService(
        store,
        numeric=["amount"],
        categorical=["kind"],
        model_name="credit",
        base_url="http://drift:8105",
        maker=maker or FakeMaker(),
        **{"window": 50, "reference_max": 40, "kept": 3, **kw},
    )


def trained(version: str, start_s: int, end_s: int, model: str = "credit") -> ModelTrained:
    payload = ModelTrainedPayload(
        model_name=model,
        model_version=version,
        run_id="r",
        metrics={},
        window_start=T0 + timedelta(seconds=start_s),
        window_end=T0 + timedelta(seconds=end_s),
        dataset_version="d",
        dataset_sha256="0" * 64,
        feature_views=["v"],
        code_version="c",
    )
    return ModelTrained.create(payload, producer="training")


def promoted(version: str, at: datetime | None = None) -> ModelPromoted:
    payload = ModelPromotedPayload(
        model_name="credit",
        model_version=version,
        run_id="r",
        evidence=GateEvidence(checks=[], candidate_metrics={}),
    )
    event = ModelPromoted.create(payload, producer="training")
    return event.model_copy(update={"occurred_at": at}) if at else event


def test_doctests() -> None:
    assert doctest.testmod(report_summary).failed == 0


def test_sample_evenly_spreads_over_the_whole_window() -> None:
    picked = sample_evenly(list(range(1000)), 10)
    assert picked == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    assert sample_evenly([1, 2], 10) == [1, 2]


def test_the_record_window_keeps_the_first_rows_and_the_latest_only(tmp_path: Path) -> None:
    keep(tmp_path, rows(500), kept=100, first_kept=20)
    keep(tmp_path, rows(10, start=500), kept=100, first_kept=20)  # another batch, another transaction
    store = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=20)
    earliest, bounds = store.earliest()
    assert len(earliest) == 20 and bounds["first_seq"] == 1 and bounds["last_seq"] == 20
    latest, window = store.latest(30)
    assert len(latest) == 30 and (window["first_seq"], window["last_seq"]) == (481, 510)
    assert window["end"] - window["start"] == 29  # event times of rows 480..509
    assert len(store.between(T0.timestamp(), (T0 + timedelta(seconds=10_000)).timestamp())) == 120
    assert store.last_seq() == 510


def test_a_redelivered_older_promotion_does_not_replace_a_later_champion(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=20)
    assert store.promote("4", at=200.0) and store.champion() == ("4", 200.0)
    assert not store.promote("3", at=100.0) and store.champion() == ("4", 200.0)


def test_report_files_never_leave_the_reports_folder(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=20)
    with pytest.raises(ValueError, match="leaves the reports folder"):
        store.path("../drift", ".db")
    with pytest.raises(ValueError):
        store.path("x/../../y", ".html")


async def test_the_reference_is_the_earliest_records_until_a_champion_and_its_window_are_known(
    tmp_path: Path,
) -> None:
    keep(tmp_path, rows(400), kept=200, first_kept=20)
    made = reports(tmp_path)
    ref, described = made.reference()
    assert len(ref) == 20 and described["source"] == "earliest" and "no champion" in described["note"]

    await made.on_promoted(promoted("7"), SOURCE)
    ref, described = made.reference()
    assert described["source"] == "earliest" and "no ModelTrained" in described["note"]

    await made.on_trained(trained("7", 250, 349), SOURCE)  # 100 kept records in the window
    await made.on_trained(trained("9", 0, 10, model="other"), SOURCE)  # another model: ignored
    ref, described = made.reference()
    assert described["source"] == "champion" and described["model_version"] == "7"
    assert len(ref) == 40 and described["kept_records_in_window"] == 100  # an even sample of 40
    assert described["training_window"]["start"] == (T0 + timedelta(seconds=250)).isoformat()
    assert made.store.reference("7") == (ref, 100)  # frozen for that version


async def test_a_champion_whose_window_has_too_few_kept_records_falls_back_and_says_why(
    tmp_path: Path,
) -> None:
    keep(tmp_path, rows(400), kept=200, first_kept=20)
    made = reports(tmp_path)
    await made.on_trained(trained("8", 100, 100 + MIN_REFERENCE - 5), SOURCE)  # rows 20..199 were dropped
    await made.on_promoted(promoted("8"), SOURCE)
    _, described = made.reference()
    assert described["source"] == "earliest" and "only 0 kept records" in described["note"]


async def test_a_short_reference_is_retaken_when_more_of_its_window_arrives(tmp_path: Path) -> None:
    keep(tmp_path, rows(235), kept=1000, first_kept=20)  # the window 200..299 is a third there
    made = reports(tmp_path)
    await made.on_trained(trained("5", 200, 299), SOURCE)
    await made.on_promoted(promoted("5"), SOURCE)
    first, _ = made.reference()
    assert len(first) == 35
    keep(tmp_path, rows(100, start=235), kept=1000, first_kept=20)
    again, described = made.reference()
    assert len(again) == 40 and described["kept_records_in_window"] == 100


async def test_requests_that_pile_up_are_coalesced_into_one_report(tmp_path: Path) -> None:
    keep(tmp_path, rows(100))
    maker = FakeMaker()
    made = reports(tmp_path, maker)
    ids = [await made.request(t) for t in ("manual", "schedule", "manual")]
    with pytest.raises(ReportPending):
        made.get(ids[0])
    made.make(made.store.requests())
    assert len(maker.calls) == 1 and made.counts == {"made": 1, "failed": 0, "coalesced": 2}
    first = made.get(ids[0])
    assert first["status"] == "done" and [c["trigger"] for c in first["coalesced"]] == ["schedule", "manual"]
    assert made.get(ids[2])["id"] == ids[0] and made.get(ids[2])["requested_id"] == ids[2]
    assert made.file(ids[1], ".html").read_text() == "<html>fake</html>"
    assert made.store.requests() == [] and len(made.listing(10)["reports"]) == 1


async def test_only_the_newest_reports_are_kept_and_a_failed_one_says_why(tmp_path: Path) -> None:
    made = reports(tmp_path, kept=2)
    failed = await made.request()
    made.make(made.store.requests())  # no records yet
    assert made.get(failed)["status"] == "failed" and "no records" in made.get(failed)["error"]
    with pytest.raises(UnknownReport, match="failed"):
        made.file(failed, ".html")
    keep(tmp_path, rows(100))
    done = []
    for _ in range(3):
        done.append(await made.request())
        made.make(made.store.requests())
    assert [r["id"] for r in made.listing(10)["reports"]] == done[:0:-1]  # newest first, 2 kept
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(
        f"{i}{s}" for i in done[1:] for s in (".html", ".json")
    )
    with pytest.raises(UnknownReport, match="pruned"):
        made.get(done[0])


def test_a_real_evidently_report_finds_the_shifted_column_only() -> None:
    rng = random.Random(2)
    reference = [{"amount": rng.gauss(100, 20), "kind": rng.choice("ab"), "empty": None} for _ in range(300)]
    current = [{"amount": rng.gauss(160, 20), "kind": rng.choice("ab"), "empty": None} for _ in range(200)]
    result = drift_report(current, reference, ["amount", "empty"], ["kind"])
    s = result.summary
    assert s["drifted_columns"] == ["amount"] and s["columns_tested"] == 2 and s["share"] == 0.5
    assert s["columns"]["amount"]["drifted"] is True and s["columns"]["kind"]["drifted"] is False
    assert s["columns"]["amount"]["score"] < s["columns"]["amount"]["threshold"]  # a p-value
    assert s["columns"]["amount"]["method"].startswith("K-S") and result.skipped_columns == ["empty"]
    assert "<html" in result.html.lower() and json.loads(result.json)["metrics"]
    with pytest.raises(ValueError, match="no watched column"):
        drift_report(current, reference, ["empty"], [])


async def test_a_drift_event_names_its_report_and_requests_it_in_the_same_transaction(tmp_path: Path) -> None:
    woken: list[int] = []
    h = reporting_harness(tmp_path / "drift.db", lambda: woken.append(1))
    await feed_records(h, 3000, shift_at=2000)
    assert len(h.sent) == 1 and woken == [1]
    event = h.sent[0]
    assert event.payload.report_id == str(event.event_id)
    assert event.payload.report_url == f"http://drift/reports/{event.event_id}"
    store = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=1000)
    assert store.requests() == [(str(event.event_id), str(event.event_id), None)]
    assert store.flagged([str(event.event_id)]) == ["amount"]  # the feature the event named
    latest, window = store.latest(500)
    assert window["last_seq"] == 3000 and set(latest[-1]) == {"amount", "kind"}
    assert sum(r["amount"] > 200 for r in latest) == 500  # the window is the shifted records


async def test_the_worker_makes_scheduled_and_requested_reports_and_skips_an_idle_schedule(
    tmp_path: Path,
) -> None:
    keep(tmp_path, rows(100))
    made = reports(tmp_path, FakeMaker(), interval_s=0.05)
    await made.start()
    try:
        await wait_until(lambda: made.counts["made"] == 1, what="a scheduled report")
        await asyncio.sleep(0.3)  # several ticks, no record since that report: no new report
        assert made.counts["made"] == 1
        asked = await made.request()
        await wait_until(lambda: made.store.summary(asked) is not None, what="the requested report")
        keep(tmp_path, rows(10, start=100))  # new records: the schedule reports again
        await wait_until(lambda: made.counts["made"] == 3, what="a report of the new records")
        triggers = [r["trigger"] for r in made.listing(10)["reports"]]
        assert triggers == ["schedule", "manual", "schedule"]  # newest first
    finally:
        await made.stop(timeout_s=5)
    assert all(t.done() for t in made._tasks)


async def test_a_report_library_that_fails_to_load_at_start_stops_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from services.drift import app

    def broken() -> None:
        raise ImportError("no such library")

    monkeypatch.setattr(app, "load_evidently", broken)
    await app.preload_reports()  # logs, raises nothing: the service starts
    assert "could not be loaded ahead of the first report" in caplog.text


def test_the_service_preloads_what_its_reports_import() -> None:
    import sys

    from services.drift.adapters.evidently_report import load_evidently

    load_evidently()
    assert {"evidently.presets", "services.drift.adapters.evidently_quality"} <= set(sys.modules)
