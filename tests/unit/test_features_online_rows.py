"""The features service writes its rows into Feast's online store directly (adapters/online_rows.py),
not through `FeatureStore.push`. The same rows written both ways must leave the same online table,
byte for byte, and read back the same through Feast, hostile values included: odd event times
(microseconds, the years the stores allow at each end), the largest int64, a negative and a very
precise float, non-ASCII and empty strings, and one entity twice in a batch (the later row wins)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feature_repo import PUSH_SOURCE, FeatureStoreSettings, feature_refs, open_store
from feature_repo.names import CATEGORICAL_FEATURES, ENTITY_KEY, FEATURES
from services.features.adapters.feast_push import rows_frame
from services.features.adapters.online_rows import OnlineRows
from services.features.adapters.sqlite_online import SqliteUpsert
from workbench.feature_rows import demo_feature_rows


def demo_rows(n: int) -> list[dict[str, Any]]:
    return demo_feature_rows(n, seed=11, id_prefix="rows")


def hostile_rows() -> list[dict[str, Any]]:
    rows = demo_rows(6)
    rows[0] |= {"applied_at": datetime(1700, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "credit_amount": -0.0}
    rows[1] |= {"applied_at": datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}
    rows[1] |= {"credit_amount": 1234.5678901234567, "age_in_years": 2**63 - 1}
    rows[2] |= {"purpose": "Ünïcødé ✓ 日本", "housing": "", "credit_amount": 1e308}
    rows[3] |= {"applied_at": datetime(2026, 3, 29, 1, 30, tzinfo=UTC) + timedelta(microseconds=7)}
    later = dict(rows[4]) | {"credit_amount": 99.5, "job": "later"}  # the same entity again
    return [*rows, later]


def online_table(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        (table,) = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
        columns = "entity_key, feature_name, value, value_text, event_ts, created_ts"
        return db.execute(f'SELECT {columns} FROM "{table}" ORDER BY entity_key, feature_name').fetchall()


@pytest.mark.parametrize("rows", [demo_rows(40), hostile_rows()], ids=["demo", "hostile"])
def test_the_direct_write_stores_what_feast_push_stores(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    from feast.data_source import PushMode

    pushed, written = FeatureStoreSettings(tmp_path / "push"), FeatureStoreSettings(tmp_path / "direct")
    open_store(pushed, apply=True).push(PUSH_SOURCE, rows_frame(rows), to=PushMode.ONLINE)
    OnlineRows(open_store(written, apply=True)).write(rows)

    stored = online_table(tmp_path / "direct" / "online.db")
    assert len(stored) == len({r[ENTITY_KEY] for r in rows}) * len(FEATURES)
    assert stored == online_table(tmp_path / "push" / "online.db")

    keys = [{ENTITY_KEY: k} for k in dict.fromkeys(r[ENTITY_KEY] for r in rows)]
    reads = [
        open_store(settings).get_online_features(features=feature_refs(), entity_rows=keys).to_dict()
        for settings in (pushed, written)
    ]
    assert reads[0] == reads[1]
    last = {r[ENTITY_KEY]: r for r in rows}  # the later row of an entity wins
    assert reads[1]["credit_amount"] == [last[k[ENTITY_KEY]]["credit_amount"] for k in keys]
    assert reads[1]["purpose"] == [last[k[ENTITY_KEY]]["purpose"] for k in keys]


def test_the_plain_sqlite_store_gets_one_upsert_per_batch_and_any_other_store_feasts_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equality above holds for the batched upsert (adapters/sqlite_online.py): the SQLite store
    never sees Feast's per-value loop. A store the upsert does not know (Redis in the cluster profile;
    SQLite with vector search) is written by its provider."""
    from feast.infra.passthrough_provider import PassthroughProvider

    def feast_write(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the provider's write was called")

    monkeypatch.setattr(PassthroughProvider, "online_write_batch", feast_write)
    store = open_store(FeatureStoreSettings(tmp_path), apply=True)
    OnlineRows(store).write(demo_rows(3))
    assert len(online_table(tmp_path / "online.db")) == 3 * len(FEATURES)

    handed: list[Any] = []
    monkeypatch.setattr(PassthroughProvider, "online_write_batch", lambda *a, **k: handed.append(a))
    other = OnlineRows(store)
    monkeypatch.setattr(store.provider, "_online_store", object(), raising=False)
    assert SqliteUpsert.of(store.provider, store.config, other.view) is None  # not SQLite
    other._sqlite = None
    other.write(demo_rows(2))
    assert len(handed) == 1 and len(handed[0][3]) == 2  # (provider, config, view, rows)
    store.config.online_store.vector_enabled = True
    assert SqliteUpsert.of(PassthroughProvider(store.config), store.config, other.view) is None


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path)
    OnlineRows(open_store(settings, apply=True)).write([])
    assert not (tmp_path / "online.db").exists() or online_table(tmp_path / "online.db") == []


def test_a_feature_of_a_type_it_cannot_write_directly_is_refused_at_open(tmp_path: Path) -> None:
    from feast.types import Float32

    store = open_store(FeatureStoreSettings(tmp_path), apply=True)
    view = store.get_feature_view("loan_application_features")
    view.features[[f.name for f in view.features].index(CATEGORICAL_FEATURES[0])].dtype = Float32
    store.get_feature_view = lambda name: view  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="no direct write for Feast type FLOAT"):
        OnlineRows(store)


@pytest.mark.parametrize("rows", [demo_rows(20), hostile_rows()], ids=["demo", "hostile"])
def test_it_hands_the_online_store_what_push_hands_it(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    """Before any store: the rows given to `online_write_batch` equal the ones push prepares (entity
    keys, value protobufs, times), so an online store other than SQLite (Redis) gets the same too."""
    from feast.infra.passthrough_provider import PassthroughProvider

    store = open_store(FeatureStoreSettings(tmp_path), apply=True)
    direct = OnlineRows(store)
    pushed = PassthroughProvider._prep_rows_to_write_for_ingestion(direct.view, rows_frame(rows))
    mine = direct.prepared(rows)
    assert len(mine) == len(pushed) == len(rows)
    for (key, values, at, created), (key_, values_, at_, created_) in zip(mine, pushed, strict=True):
        assert key == key_ and values == values_ and created is created_ is None
        assert at == at_.astimezone(UTC)  # the same instant (push hands pandas' time, tz-aware)


@pytest.mark.parametrize(
    "change, refused",
    [
        (lambda view, _: setattr(view.batch_source, "created_timestamp_column", "at"), "created-timestamp"),
        (lambda view, _: setattr(view.batch_source, "field_mapping", {"x": "y"}), "field mapping"),
        (lambda view, store: setattr(store, "list_feature_views", lambda: [view, view]), "views other than"),
        (lambda view, _: setattr(view.batch_source, "timestamp_field", "received_at"), "event time other"),
        (lambda _, store: setattr(store, "list_feature_services", lambda: [_Precomputes()]), "precomputes"),
    ],
    ids=["created-timestamp", "field-mapping", "two-views", "event-time", "precompute"],
)
def test_definitions_push_would_treat_differently_are_refused_at_open(
    tmp_path: Path, change: Any, refused: str
) -> None:
    store = open_store(FeatureStoreSettings(tmp_path), apply=True)
    view = store.get_feature_view("loan_application_features")
    store.get_feature_view = lambda name: view  # type: ignore[method-assign]
    change(view, store)
    with pytest.raises(ValueError, match=refused):
        OnlineRows(store)


class _Precomputes:
    precompute_online = True


def test_remembered_values_are_stored_as_push_stores_them_batch_after_batch(tmp_path: Path) -> None:
    """One writer over several batches, as the service keeps it: values remembered from the first
    batch (strings, integers) are stored in later ones exactly as push stores them, and floats that
    compare equal but are not the same bytes (0.0 and -0.0) stay apart."""
    from feast.data_source import PushMode

    first, second = demo_rows(30), hostile_rows()
    first[0] |= {"credit_amount": 0.0}
    second[3] |= {"credit_amount": -0.0}
    pushed, written = FeatureStoreSettings(tmp_path / "push"), FeatureStoreSettings(tmp_path / "direct")
    push_store, direct = open_store(pushed, apply=True), OnlineRows(open_store(written, apply=True))
    for rows in (first, second, first[:5]):
        push_store.push(PUSH_SOURCE, rows_frame(rows), to=PushMode.ONLINE)
        direct.write(rows)
    assert online_table(tmp_path / "direct" / "online.db") == online_table(tmp_path / "push" / "online.db")


def test_the_codec_remembers_recurring_values_but_never_floats() -> None:
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.protos.feast.types.Value_pb2 import Value

    from services.features.adapters.sqlite_online import ValueCodec

    codec = ValueCodec(extract_text_and_num, limit=3)
    as_int, as_double = (lambda v: Value(int64_val=v)), (lambda v: Value(double_val=v))
    assert codec.encode("n", as_int, 1) == (Value(int64_val=1).SerializeToString(), "1")
    assert codec.encode("x", as_double, 2) == (
        Value(double_val=2).SerializeToString(),
        "2.0",
    )  # an int for a double
    assert codec.encode("x", as_double, 0.0) != codec.encode("x", as_double, -0.0)
    for _ in range(5):
        codec.encode("x", as_double, float("nan"))
    assert len(codec._known) == 2  # (n, int, 1) and (x, int, 2): no float kept, no NaN piling up
    codec.encode("s", lambda v: Value(string_val=v), "a")
    codec.encode("s", lambda v: Value(string_val=v), "b")  # past the limit: made, not kept
    assert len(codec._known) == 3
    assert codec.encode("s", lambda v: Value(string_val=v), "b") == (
        Value(string_val="b").SerializeToString(),
        "b",
    )
