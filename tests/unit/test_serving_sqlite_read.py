"""Serving reads its online features straight from Feast's SQLite table (adapters/sqlite_read.py).
It must answer what Feast's `get_online_features` answers, hostile values included (the rows of
tests/unit/test_features_online_rows.py: odd times, the largest int64, -0.0, 1e308, non-ASCII and
empty strings, one entity twice), for unknown entities, duplicates and any order of names, and it
must not be used before it has been checked against Feast on the stored entities."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from feature_repo import FeatureStoreSettings, open_store
from feature_repo.names import ENTITY_KEY, FEATURE_VIEW, FEATURES
from services.features.adapters.online_rows import OnlineRows
from services.serving.adapters.feast_online import FeastOnlineFeatures
from services.serving.adapters.sqlite_read import SqliteRead
from tests.unit.test_features_online_rows import demo_rows, hostile_rows


def written(repo: Path, rows: list[dict[str, Any]]) -> FeastOnlineFeatures:
    OnlineRows(open_store(FeatureStoreSettings(repo), apply=True)).write(rows)
    features = FeastOnlineFeatures(repo, "mlops", {})
    features.open()
    return features


@pytest.mark.parametrize("rows", [demo_rows(30), hostile_rows()], ids=["demo", "hostile"])
def test_the_direct_read_answers_what_feast_answers(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    features = written(tmp_path, rows)
    assert features._direct is not None  # checked at open against Feast, and taken
    ids = list(dict.fromkeys(r[ENTITY_KEY] for r in rows))
    names = list(FEATURES)
    asked = [*ids, "no-such-application", ids[0], "", "Ünïcødé-id ✓"]  # unknown, twice, empty, odd
    for chosen in (names, names[::-1], names[:3], [names[5]]):
        direct = features.read(asked, chosen)
        assert direct == features._feast_read(asked, chosen)
        assert direct[len(ids)] is None and direct[0] == direct[len(ids) + 1]
    assert features.read([], names) == []
    later = rows[-1]  # the entity written twice: the later row is what both read
    assert features.read([later[ENTITY_KEY]], ["job"]) == [{"job": later["job"]}]


def test_a_feature_the_view_lacks_is_refused_by_both_paths(tmp_path: Path) -> None:
    features = written(tmp_path, demo_rows(3))
    entity = demo_rows(3)[0][ENTITY_KEY]
    with pytest.raises(KeyError, match="not_a_feature"):
        features.read([entity], ["credit_amount", "not_a_feature"])
    with pytest.raises(Exception, match="not_a_feature"):
        features._feast_read([entity], ["credit_amount", "not_a_feature"])


def test_before_the_view_exists_feast_reads_and_the_direct_read_is_taken_once_it_does(tmp_path: Path) -> None:
    features = FeastOnlineFeatures(tmp_path, "mlops", {})
    features.open()  # serving started before the features service registered anything
    assert features.ready and features._direct is None and not features._decided
    with pytest.raises(Exception, match=FEATURE_VIEW):  # Feast's own error: a view it does not know
        features.read(["a"], ["credit_amount"])
    rows = demo_rows(5)
    OnlineRows(open_store(FeatureStoreSettings(tmp_path), apply=True)).write(rows)
    features._store = open_store(FeatureStoreSettings(tmp_path))  # as a restart would, with the view
    features._next_try = 0.0  # instead of waiting out the 5 s between tries
    assert features.read([rows[0][ENTITY_KEY]], ["age_in_years"]) == [
        {"age_in_years": rows[0]["age_in_years"]}
    ]
    assert features._decided and features._direct is not None


def test_a_direct_read_that_disagrees_with_feast_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = demo_rows(4)
    OnlineRows(open_store(FeatureStoreSettings(tmp_path), apply=True)).write(rows)
    monkeypatch.setattr(SqliteRead, "entity_key", lambda self, entity_id: entity_id.encode())  # a wrong key
    features = FeastOnlineFeatures(tmp_path, "mlops", {})
    features.open()
    assert features._decided and features._direct is None
    assert features.read([rows[1][ENTITY_KEY]], ["job"]) == [{"job": rows[1]["job"]}]  # through Feast


def test_only_the_plain_sqlite_store_is_read_directly(tmp_path: Path) -> None:
    store = open_store(FeatureStoreSettings(tmp_path), apply=True)
    assert SqliteRead.of(store, FEATURE_VIEW) is not None
    other = SimpleNamespace(config=store.config, provider=SimpleNamespace(online_store=object()))
    assert SqliteRead.of(other, FEATURE_VIEW) is None  # Redis, PostgreSQL, ...: Feast reads
