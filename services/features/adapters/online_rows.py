"""Feature rows straight into Feast's online store, without a frame in between.

`FeatureStore.push` takes a pandas frame, makes it an Arrow table, and turns every value back into a
Python object and then into a protobuf through Feast's generic type map: about a fifth of the
features service's CPU under load (py-spy, docs/benchmarks.md). Our rows are typed already
(domain/rows.py: floats, ints and strings as the feature view declares them), so each value goes into
its protobuf field directly, and the rows go to the same `online_write_batch` of the same kind of
provider that `push` ends in (on the plain SQLite store, to the same upsert run once per batch:
adapters/sqlite_online.py). The online store receives the rows `push` would write: the unit test
pushes the same rows both ways and compares the stored tables byte for byte
(tests/unit/test_features_online_rows.py).

The view is the one the features service registered as it opened the store (it owns registration).
What the direct write does not do is refused at open: a type outside `PROTO_FIELD`, and whatever push
would do on top (a field mapping, a created-timestamp column, another view fed by the push source, a
feature service that precomputes online vectors), so a change of definitions cannot be written wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURE_VIEW, PUSH_SOURCE
from services.features.adapters.sqlite_online import SqliteUpsert
from services.features.domain.rows import FeatureRow

if TYPE_CHECKING:
    from feast import FeatureStore

# Feast's value types of our feature view -> the ValueProto field that holds them.
PROTO_FIELD = {"DOUBLE": "double_val", "INT64": "int64_val", "STRING": "string_val"}


class OnlineRows:
    def __init__(self, store: FeatureStore) -> None:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.config = store.config
        self.view = store.get_feature_view(FEATURE_VIEW)
        self.provider = store.provider  # the store's own: one connection (one Redis pool) per process
        _refuse_what_push_would_do_differently(store, self.view)
        self._sqlite = SqliteUpsert.of(self.provider, self.config, self.view)  # None: Feast writes
        self._key, self._value = EntityKey, Value
        self._fields: list[tuple[str, Callable[[Any], Any]]] = []
        for feature in self.view.features:
            kind = feature.dtype.to_value_type().name
            if kind not in PROTO_FIELD:
                raise ValueError(f"{FEATURE_VIEW}.{feature.name}: no direct write for Feast type {kind}")
            self._fields.append((feature.name, _maker(Value, PROTO_FIELD[kind])))

    def write(self, rows: list[FeatureRow]) -> None:
        """Upsert `rows` (blocking: called from a thread, one batch at a time)."""
        if not rows:
            return
        if self._sqlite is not None:
            self._sqlite.write(rows, self._fields)
        else:
            self.provider.online_write_batch(self.config, self.view, self.prepared(rows), progress=None)

    def prepared(self, rows: list[FeatureRow]) -> list[Any]:
        """What `online_write_batch` takes: (entity key, values by feature, event time, created time)."""
        key, value, fields = self._key, self._value, self._fields
        return [
            (
                key(join_keys=[ENTITY_KEY], entity_values=[value(string_val=row[ENTITY_KEY])]),
                {name: make(row[name]) for name, make in fields},
                row[EVENT_TIME],
                None,  # the push source has no created-timestamp column (checked at open): push writes None
            )
            for row in rows
        ]


def _refuse_what_push_would_do_differently(store: FeatureStore, view: Any) -> None:
    """Push also renames columns (a field mapping), reads a created-timestamp column, feeds every view
    of the push source, and recomputes feature services that precompute online vectors. None of that
    applies to our definitions; a change that made any of it apply must not be written around."""
    views = [*store.list_feature_views(), *store.list_stream_feature_views()]
    fed = sorted(v.name for v in views if v.stream_source and v.stream_source.name == PUSH_SOURCE)
    fed += sorted(v.name for v in store.list_label_views() if v.source and v.source.name == PUSH_SOURCE)
    found = {
        f"an event time other than {EVENT_TIME}": view.batch_source.timestamp_field != EVENT_TIME,
        "a field mapping": bool(view.batch_source.field_mapping),
        "a created-timestamp column": bool(view.batch_source.created_timestamp_column),
        f"views other than {FEATURE_VIEW} fed by {PUSH_SOURCE} ({fed})": fed != [FEATURE_VIEW],
        "a feature service that precomputes online": any(
            getattr(service, "precompute_online", False) for service in store.list_feature_services()
        ),
    }
    join_keys = [(column.name, column.dtype.to_value_type().name) for column in view.entity_columns]
    found[f"join keys other than {ENTITY_KEY} (string): {join_keys}"] = join_keys != [(ENTITY_KEY, "STRING")]
    refused = [what for what, present in found.items() if present]
    if refused:
        raise ValueError(f"{FEATURE_VIEW} cannot be written directly: it has {'; '.join(refused)}")


def _maker(value: Any, field: str) -> Callable[[Any], Any]:
    # One keyword per field, spelt out: `value(**{field: v})` built a dict for each of 20 values a row.
    makers: dict[str, Callable[[Any], Any]] = {
        "double_val": lambda v: value(double_val=v),
        "int64_val": lambda v: value(int64_val=v),
        "string_val": lambda v: value(string_val=v),
    }
    return makers[field]
