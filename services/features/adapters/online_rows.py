"""Feature rows straight into Feast's online store, without a frame in between.

`FeatureStore.push` takes a pandas frame, makes it an Arrow table, and turns every value back into a
Python object and then into a protobuf through Feast's generic type map: about a fifth of the
features service's CPU under load (py-spy, docs/benchmarks.md). Our rows are typed already
(domain/rows.py: floats, ints and strings as the feature view declares them), so each value goes into
its protobuf field directly, and the rows go to the same `online_write_batch` of the same kind of
provider that `push` ends in. The online store receives the rows `push` would write: the unit test
pushes the same rows both ways and compares the stored tables byte for byte
(tests/unit/test_features_online_rows.py).

The view is the one the features service registered as it opened the store (it owns registration);
a view with a type outside `PROTO_FIELD` is refused at open, so a new type cannot be written wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURE_VIEW
from services.features.domain.rows import FeatureRow

if TYPE_CHECKING:
    from feast import FeatureStore

# Feast's value types of our feature view -> the ValueProto field that holds them.
PROTO_FIELD = {"DOUBLE": "double_val", "INT64": "int64_val", "STRING": "string_val"}


class OnlineRows:
    def __init__(self, store: FeatureStore) -> None:
        from feast.infra.provider import get_provider
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.config = store.config
        self.view = store.get_feature_view(FEATURE_VIEW)
        self.provider = get_provider(store.config)
        join_keys = [(column.name, column.dtype.to_value_type().name) for column in self.view.entity_columns]
        if join_keys != [(ENTITY_KEY, "STRING")]:
            raise ValueError(f"{FEATURE_VIEW}: expected one string join key, {ENTITY_KEY}; found {join_keys}")
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
        key, value, fields = self._key, self._value, self._fields
        data: list[Any] = [
            (
                key(join_keys=[ENTITY_KEY], entity_values=[value(string_val=row[ENTITY_KEY])]),
                {name: make(row[name]) for name, make in fields},
                row[EVENT_TIME],
                None,  # the push source has no created-timestamp column: push writes None too
            )
            for row in rows
        ]
        self.provider.online_write_batch(self.config, self.view, data, progress=None)


def _maker(value: Any, field: str) -> Callable[[Any], Any]:
    return lambda v: value(**{field: v})
