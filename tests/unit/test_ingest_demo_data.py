"""The demo stream: generated applicants with PII, labels split off, each drift kind doing what it says."""

from __future__ import annotations

from statistics import mean

import pytest

from contracts.events import LabelObserved
from workbench.demo_data import DRIFT_KINDS, ApplicationStream, DriftSpec, german_credit
from workbench.demo_producer import label_event, parse_args


def test_the_real_german_credit_data() -> None:
    rows = german_credit()
    assert len(rows) == 1000 and len(rows[0]) == 21
    assert sum(r["creditability"] == "bad" for r in rows) == 300


def test_records_carry_pii_but_not_the_label_and_are_deterministic() -> None:
    first, again = ApplicationStream(seed=3).take(50), ApplicationStream(seed=3).take(50)
    assert [a.record for a in first] == [a.record for a in again]
    record = first[0].record
    assert "creditability" not in record and first[0].label in ("good", "bad")
    assert record["applicant_name"] and "@" in record["email"] and record["notes"]
    assert len({a.record["application_id"] for a in first}) == 50


def test_covariate_shift_moves_one_feature_from_the_drift_row() -> None:
    plain = ApplicationStream(seed=4).take(2000)
    apps = ApplicationStream(DriftSpec("covariate", at=1000, factor=2.0), seed=4).take(2000)
    for a, b in zip(plain, apps, strict=True):  # the same applicants; from row 1000 one feature doubled
        amount = a.record["credit_amount"]
        assert b.record["credit_amount"] == (amount if a.row < 1000 else round(2 * amount))
        assert {k: v for k, v in a.record.items() if k != "credit_amount"} == {
            k: v for k, v in b.record.items() if k != "credit_amount"
        }
    assert mean(a.record["credit_amount"] for a in apps[1000:]) > 1.6 * mean(
        a.record["credit_amount"] for a in apps[:1000]
    )
    assert not any(a.drifted for a in apps[:1000]) and all(a.drifted for a in apps[1000:])


def test_label_flip_touches_only_the_group() -> None:
    plain = ApplicationStream(seed=5).take(1000)
    flipped = ApplicationStream(DriftSpec("label_flip", at=0, flip_probability=1.0), seed=5).take(1000)
    for a, b in zip(plain, flipped, strict=True):
        group = a.record["foreign_worker"] == "yes"
        assert (a.label != b.label) == group


def test_prior_shift_changes_the_bad_share() -> None:
    apps = ApplicationStream(DriftSpec("prior_shift", at=0, bad_share=0.6), seed=6).take(3000)
    assert mean(a.label == "bad" for a in apps) == pytest.approx(0.6, abs=0.03)


def test_labels_are_contract_events_keyed_by_entity() -> None:
    app = ApplicationStream(seed=7).take(1)[0]
    event = label_event(app, "loan_applications", 5.0)
    assert isinstance(event, LabelObserved) and event.key() == app.record["application_id"].encode()
    assert event.payload.label == app.label


def test_cli_arguments() -> None:
    args = parse_args(["--rate", "50", "--rows", "10", "--drift-kind", "label_flip", "--drift-at", "5"])
    assert (args.rate, args.rows, args.drift_kind, args.drift_at) == (50.0, 10, "label_flip", 5)
    assert set(DRIFT_KINDS) == {"none", "covariate", "label_flip", "prior_shift", "label_swap"}


def test_label_swap_inverts_every_label_from_the_drift_row_and_keeps_the_features() -> None:
    plain = ApplicationStream(seed=8).take(400)
    swapped = ApplicationStream(DriftSpec("label_swap", at=150), seed=8).take(400)
    for a, b in zip(plain, swapped, strict=True):
        assert a.record == b.record and (a.label != b.label) == (a.row >= 150) == b.drifted
