"""Performance and concept-drift reports (issue 17, item 3): the kept records carry the served
prediction and its label (real SQLite, through the service's handlers), an old store file gains the
columns, and real Evidently runs on small synthetic windows: concept drift (labels flipped, features
unchanged), one drifted feature flagged by its drift event, and a window with no labels."""

from __future__ import annotations

import doctest
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

from services.drift.adapters.evidently_report import drift_report
from services.drift.adapters.report_store import ReportStore
from services.drift.adapters.store import DriftStore
from services.drift.domain import report_quality
from services.drift.domain.report_summary import summarize
from services.drift.domain.watch import DriftWatch
from services.drift.reports import ReportService
from tests.unit.drift_helpers import reporting_harness
from tests.unit.test_drift_service import CONFIG, feed_records, label, made, raws, record

Row = dict[str, Any]


def window(
    n: int, seed: int, *, flip: bool = False, shift_kind: bool = False, labelled: bool = True
) -> list[Row]:
    """Kept records as the report store returns them: features, and the served prediction and label.

    About 30 % positives, decided right 85 % of the time; `flip` swaps every label (the features and
    the model's outputs stay as they were), `shift_kind` makes the categorical feature mostly "c".
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        truth = rng.random() < 0.3
        decided = truth if rng.random() < 0.85 else not truth
        row: Row = {
            "amount": rng.gauss(100.0, 20.0),
            "kind": "c" if shift_kind and rng.random() < 0.8 else rng.choice("ab"),
            "prediction_score": min(max(rng.gauss(0.7 if decided else 0.3, 0.15), 0.0), 1.0),
            "predicted_class": int(decided),
            "model_version": "3",
        }
        if labelled:
            row["label"] = int(truth != flip)
        rows.append(row)
    return rows


def test_doctests() -> None:
    assert doctest.testmod(report_quality).failed == 0


def evidently_dict(drifted: dict[str, bool]) -> Row:
    """The shape of Snapshot.dict(): a ValueDrift metric and its test per column."""
    metrics = [
        {"id": f"m-{c}", "config": {"type": "evidently:metric_v2:ValueDrift", "column": c}, "value": 0.5}
        for c in drifted
    ]
    tests = [
        {"id": "drift", "metric_config": {"metric_id": f"m-{c}"}, "status": "FAIL" if d else "SUCCESS"}
        for c, d in drifted.items()
    ]
    return {"metrics": metrics, "tests": tests}


def test_the_outputs_are_summarized_apart_from_the_features_and_the_score_decides_prediction_drift() -> None:
    s = summarize(
        evidently_dict({"amount": False, "prediction_score": False, "predicted_class": True, "label": True})
    )
    assert s["columns_tested"] == 1 and list(s["outputs"]) == ["prediction_score", "predicted_class", "label"]
    assert s["prediction_drift"] is False and s["target_drift"] is True and s["dataset_drift"] is False
    s = summarize(evidently_dict({"amount": True, "predicted_class": True}), flagged=["kind"])
    assert s["prediction_drift"] is True and s["target_drift"] is None and s["drifted_columns"] == ["amount"]


def test_concept_drift_shows_as_target_drift_and_an_accuracy_drop_not_as_dataset_drift() -> None:
    # The same applicants, scored the same, with every label swapped: only the concept changed.
    result = drift_report(window(300, seed=1, flip=True), window(300, seed=1), ["amount"], ["kind"])
    s = result.summary
    assert s["dataset_drift"] is False and s["drifted_columns"] == []
    assert s["target_drift"] is True and s["prediction_drift"] is False
    assert s["labelled_rows"] == {"current": 300, "reference": 300}
    assert s["accuracy"]["current"] < 0.3 < 0.7 < s["accuracy"]["reference"]
    assert s["accuracy_drop_detected"] is True
    assert s["classification"]["drop_test"]["p_value"] < s["classification"]["drop_test"]["alpha"]
    current = s["classification"]["current"]
    assert sum(current["confusion"].values()) == 300 and current["roc_auc"] < 0.5
    assert "Classification quality: 300 labelled rows vs 300" in result.html
    types = {m["config"]["type"].rsplit(":", 1)[-1] for m in json.loads(result.json)["metrics"]}
    assert {"Accuracy", "Precision", "Recall", "RocAuc", "DriftedColumnsCount", "ValueDrift"} <= types


def test_the_same_window_without_flipped_labels_shows_no_drop() -> None:
    s = drift_report(window(300, seed=1), window(300, seed=11), ["amount"], ["kind"]).summary
    assert s["target_drift"] is False and s["accuracy_drop_detected"] is False


def test_a_window_without_labels_has_no_classification_section_and_says_it_stands_on_none() -> None:
    current, reference = window(200, seed=3, labelled=False), window(200, seed=4)
    result = drift_report(current, reference, ["amount"], ["kind"])
    s = result.summary
    assert s["labelled_rows"] == {"current": 0, "reference": 200}
    assert s["accuracy"]["current"] is None and s["accuracy_drop_detected"] is None
    assert s["target_drift"] is None and s["prediction_drift"] is False  # scores are there
    assert "Classification quality" not in result.html and "Data drift of the watched" in result.html
    bare = [{"amount": r["amount"], "kind": r["kind"]} for r in current]  # no prediction either
    s = drift_report(bare, bare, ["amount"], ["kind"]).summary
    assert s["labelled_rows"] == {"current": 0, "reference": 0} and s["prediction_drift"] is None


def test_a_few_labelled_rows_give_figures_but_no_verdict() -> None:
    current = window(200, seed=5, flip=True)
    for row in current[10:]:
        del row["label"]
    s = drift_report(current, window(200, seed=6), ["amount"], ["kind"]).summary
    assert s["labelled_rows"]["current"] == 10 and s["accuracy"]["current"] is not None
    assert s["accuracy_drop_detected"] is None  # 10 < MIN_LABELLED: cannot tell


async def test_a_report_asked_by_a_data_drift_event_opens_on_the_flagged_feature(tmp_path: Path) -> None:
    store = DriftStore(tmp_path / "drift.db", records_kept=400, first_kept=200)
    kept = [
        (float(i), r) for i, r in enumerate([*window(200, seed=7), *window(200, seed=8, shift_kind=True)])
    ]
    event_id = "00000000-0000-4000-8000-000000000001"
    store.save(DriftWatch(CONFIG), {}, [], kept, [(event_id, event_id, "kind")])
    made_reports = ReportService(
        ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=200),
        numeric=["amount"],
        categorical=["kind"],
        model_name="credit",
        base_url="http://drift",
        window=200,
    )
    made_reports.make(made_reports.store.requests())
    s = made_reports.get(event_id)
    assert s["status"] == "done" and s["flagged_feature"] == "kind" and s["flagged_features"] == ["kind"]
    assert s["drifted_columns"] == ["kind"]
    assert next(iter(s["columns"])) == "kind"  # numeric columns come first otherwise
    html = made_reports.file(event_id, ".html").read_text()
    assert html.index("Flagged by the drift event: kind") < html.index("Data drift of the watched features")
    first = json.loads(made_reports.file(event_id, ".json").read_text())["metrics"][0]
    assert first["config"]["type"].endswith("ValueDrift") and first["config"]["column"] == "kind"


async def test_served_predictions_and_their_labels_land_on_their_kept_records(tmp_path: Path) -> None:
    h = reporting_harness(tmp_path / "drift.db")
    await feed_records(h, 10, shift_at=10**6)
    late = made(12, decision="decline", score=0.9)  # its record comes after it
    shadow = made(5, score=0.5).model_copy(
        update={"payload": made(5).payload.model_copy(update={"shadow": True, "prediction_id": "s5"})}
    )
    await h.service.on_streams(
        raws("predictions.made", [made(1), made(2, "decline", score=0.8), shadow, late])
    )
    rng = random.Random(1)
    await h.service.on_streams(raws("records.clean", [record(11, False, rng), record(12, False, rng)], 10))
    await h.service.on_streams(
        raws("labels.observed", [label(2, "good"), label(1, "bad", False), label(12, "bad")])
    )
    rows, _ = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=1000).latest(100)
    assert [r.get("prediction_score") for r in rows] == [None, 0.2, 0.8, *[None] * 8, 0.9]
    assert [r.get("label") for r in rows] == [None, 1, 0, *[None] * 8, 1]  # 1 = the positive label "bad"
    assert [r.get("predicted_class") for r in rows] == [None, 0, 1, *[None] * 8, 1]
    assert h.service.detectors()["report_unattached"] == 1  # the late prediction, before its record


def test_an_old_store_file_without_the_new_columns_still_opens(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "drift.db")
    db.executescript(
        """
        CREATE TABLE clean_records (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
            body TEXT NOT NULL);
        CREATE TABLE report_requests (id TEXT PRIMARY KEY, trigger TEXT NOT NULL, at REAL NOT NULL);
        INSERT INTO clean_records (at, body) VALUES (1.0, '{"amount": 5.0, "kind": "a"}');
        INSERT INTO report_requests VALUES ('r1', 'manual', 1.0);
        """
    )
    db.commit()
    db.close()
    store = DriftStore(tmp_path / "drift.db")
    store.save(
        DriftWatch(CONFIG),
        {},
        [],
        [(2.0, {"amount": 6.0, "kind": "b"})],
        [("r2", "e", "amount")],
        entities=["e2"],
        scored=[("e2", "p2", "3", 0.7, True, False)],
    )
    reports = ReportStore(tmp_path / "drift.db", tmp_path / "reports", first_kept=10)
    rows, bounds = reports.latest(10)
    assert rows[0] == {"amount": 5.0, "kind": "a"} and bounds["rows"] == 2
    assert rows[1] == {
        "amount": 6.0,
        "kind": "b",
        "prediction_score": 0.7,
        "predicted_class": 1,
        "model_version": "3",
        "label": 0,
    }
    assert reports.requests() == [("r1", "manual", None), ("r2", "e", None)] and reports.flagged(
        ["r1", "r2"]
    ) == ["amount"]
    columns = {
        row[1] for row in sqlite3.connect(tmp_path / "drift.db").execute("PRAGMA table_info(clean_records)")
    }
    assert {"entity", "prediction_id", "score", "predicted", "truth", "model_version"} <= columns
