"""What the drift-report tests share: kept records written to a drift store, a drift service wired to
name and request reports, and the drift app's settings with a dev key per role. Used by
test_drift_reports.py, test_drift_perf_reports.py, test_drift_report_routes.py and
test_drift_report_links.py."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from servicekit.auth import Role, write_dev_keys
from services.drift.adapters.store import DriftStore
from services.drift.domain.watch import DriftWatch
from services.drift.handlers import DriftService, ReportLinks
from services.drift.settings import DriftSettings
from tests.unit.test_drift_service import CONFIG, Harness

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(n: int, start: int = 0, shifted: bool = False, seed: int = 1) -> list[tuple[float, dict[str, Any]]]:
    """(event time, body) with event time T0 + i seconds, like the drift service keeps them."""
    rng = random.Random(seed)
    return [
        (
            (T0 + timedelta(seconds=i)).timestamp(),
            {"amount": rng.gauss(300.0 if shifted else 100.0, 20.0), "kind": rng.choice("ab")},
        )
        for i in range(start, start + n)
    ]


def keep(
    tmp_path: Path, batch: list[tuple[float, dict[str, Any]]], kept: int = 100, first_kept: int = 20
) -> None:
    store = DriftStore(tmp_path / "drift.db", records_kept=kept, first_kept=first_kept)
    store.save(DriftWatch(CONFIG), {}, [], batch)
    store.close()


def reporting_harness(path: Path, wake: Callable[[], None] = lambda: None) -> Harness:
    """A Harness whose drift service names a report in each drift event (http://drift/reports/<id>)
    and calls `wake` when it has requested one, as the service does with reports on."""
    h = Harness(path)
    h.service = DriftService(
        h.store,
        CONFIG,
        publish=h.publish,
        reject=h.reject,
        dataset="loan_applications",
        model_name="credit",
        reports=ReportLinks(lambda i: f"http://drift/reports/{i}", wake),
    )
    return h


def app_settings(tmp_path: Path, **extra: Any) -> tuple[DriftSettings, dict[str, str]]:
    """The drift app's settings (features amount and kind, served at https://drift.example/, state and
    keys under `tmp_path`) and a dev API key for every role, by role name."""
    write_dev_keys(tmp_path / "secrets", [(f"k-{r.value}", r) for r in Role])
    plain = json.loads((tmp_path / "secrets" / "api-keys.json").read_text())
    keys = {v["role"]: v["key"] for v in plain.values()}
    settings = DriftSettings(
        api_keys_file=tmp_path / "secrets" / "api-keys.hashed.json",
        state_dir=tmp_path,
        numeric_features=["amount"],
        categorical_features=["kind"],
        public_url="https://drift.example/",
        **extra,
    )
    return settings, keys
