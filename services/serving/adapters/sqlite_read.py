"""Feast's SQLite online read for one entity, without Feast's generic serving path.

`FeatureStore.get_online_features` turns the entity rows into protobufs, plans the read per feature
view, reads, then builds a columnar response and turns it back into Python values: 293 us of CPU
per read of one entity's 18 features, against 77 here (bench/serving_feature_read.py), and a third of
serving's CPU under load (py-spy, docs/benchmarks.md, "What a prediction costs the platform"). The
read itself is one indexed SELECT.

This does what that path does for our one view on the plain SQLite store: Feast's own table name
(`_table_id`), entity-key serialization and value conversion (`feast_value_type_to_python_type`,
with the view's declared types), and a feature the row lacks reads as None, as Feast answers
NOT_FOUND. Online reads apply no TTL in Feast 0.67 (`_populate_response_from_feature_data` marks
every stored value PRESENT), so neither does this. tests/unit/test_serving_sqlite_read.py compares
both paths on hostile rows; before its first direct read, serving compares them on stored entities
and keeps Feast's path if they differ (adapters/feast_online.py).

Used only where it is that plain store: not the SQLite store with vector search, and not Redis (the
cluster profile), which take Feast's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.common import Scalar
from feature_repo import ENTITY_KEY
from feature_repo.store import online_table, plain_sqlite_store


class SqliteRead:
    def __init__(self, store: Any, config: Any, view: Any) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        self._store, self._config = store, config
        self._table = online_table(config, view)
        self._types = {feature.name: feature.dtype.to_value_type() for feature in view.features}
        self._version = config.entity_key_serialization_version
        self._serialize, self._key, self._value = serialize_entity_key, EntityKey, Value
        self._python = feast_value_type_to_python_type

    @classmethod
    def of(cls, feature_store: Any, view_name: str) -> SqliteRead | None:
        """The direct read for this store's online store, or None where Feast must read."""
        store = plain_sqlite_store(feature_store.provider, feature_store.config)
        if store is None:
            return None
        return cls(store, feature_store.config, feature_store.get_feature_view(view_name))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self._types)

    def entity_key(self, entity_id: str) -> bytes:
        key = self._key(join_keys=[ENTITY_KEY], entity_values=[self._value(string_val=entity_id)])
        return bytes(self._serialize(key, entity_key_serialization_version=self._version))

    def stored_ids(self, limit: int) -> list[str]:
        """Up to `limit` entity ids the table holds (for the check at open)."""
        from feast.infra.key_encoding_utils import deserialize_entity_key

        conn = self._store._get_conn(self._config)
        blobs = conn.execute(f"SELECT DISTINCT entity_key FROM {self._table} LIMIT ?", (limit,)).fetchall()
        keys = [
            deserialize_entity_key(blob, entity_key_serialization_version=self._version) for (blob,) in blobs
        ]
        return [key.entity_values[0].string_val for key in keys]

    def read(self, entity_ids: Sequence[str], names: Sequence[str]) -> list[dict[str, Scalar] | None]:
        """Feature values per entity, in order; None for an entity the store does not know."""
        unknown = [name for name in names if name not in self._types]
        if unknown:  # as Feast refuses a feature reference its view does not have
            raise KeyError(f"features not in the online view: {unknown}")
        keys = [self.entity_key(entity_id) for entity_id in entity_ids]
        if not keys:
            return []
        conn = self._store._get_conn(self._config)  # Feast's own connection, as its read asks for it
        found: dict[bytes, dict[str, Scalar]] = {key: {} for key in keys}
        wanted = set(names)
        sql = (
            f"SELECT entity_key, feature_name, value FROM {self._table} "
            f"WHERE entity_key IN ({','.join('?' * len(keys))})"
        )
        for key, name, blob in conn.execute(sql, keys):
            if name in wanted:
                value = self._value()
                value.ParseFromString(blob)
                found[key][name] = self._python(value, self._types[name])
        rows: list[dict[str, Scalar] | None] = []
        for key in keys:
            row = {name: found[key].get(name) for name in names}
            rows.append(None if all(value is None for value in row.values()) else row)
        return rows
