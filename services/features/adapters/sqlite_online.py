"""Feast's SQLite online write, with one `executemany` per batch instead of one `execute` per value.

`SqliteOnlineStore.online_write_batch` runs one upsert statement per feature value from Python: 20 per
record here. The statement, the table, the columns and every value written are Feast's own (its
`_table_id`, its entity-key serialization, its `extract_text_and_num` for `value_text`), so the table
holds what Feast writes, byte for byte (tests/unit/test_features_online_rows.py compares it with
`FeatureStore.push`). Only the loop moves from Python into SQLite's C code, in one transaction as
Feast's.

Used only where it is that plain store: not the SQLite store with vector search or the value_num
column (their extra columns are Feast's business), and not Redis (the cluster profile), which takes
the provider's path.

A value's bytes are Feast's too, made once per distinct value (`ValueCodec`): 17 of the 20 features
are strings or integers that take a few dozen values each, so most of a record's values are a dict
lookup instead of a protobuf built, serialized and read back for its text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from feature_repo.names import ENTITY_KEY, EVENT_TIME
from feature_repo.store import online_table, plain_sqlite_store


class SqliteUpsert:
    def __init__(self, store: Any, config: Any, view: Any) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.helpers import extract_text_and_num
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.utils import to_naive_utc

        self._store, self._config = store, config
        table = online_table(config, view)
        columns = ("entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
        self._sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {updates};"
        )
        self._version = config.entity_key_serialization_version
        self._serialize, self._naive = serialize_entity_key, to_naive_utc
        self._key, self._value = EntityKey, Value
        self._codec = ValueCodec(extract_text_and_num)  # Feast's value_text, as its write computes it

    @classmethod
    def of(cls, provider: Any, config: Any, view: Any) -> SqliteUpsert | None:
        """The fast write for this provider's online store, or None where Feast must write."""
        store = plain_sqlite_store(provider, config)
        return None if store is None else cls(store, config, view)

    def write(self, rows: Sequence[Any], fields: Sequence[tuple[str, Callable[[Any], Any]]]) -> None:
        """Upsert the feature rows: their key, each of `fields` (name, the ValueProto maker of its type)
        and their event time, in one transaction, as `online_write_batch` would store them."""
        encode, serialize, naive, version = self._codec.encode, self._serialize, self._naive, self._version
        entity_key, value = self._key, self._value
        stored = []
        for row in rows:
            key = entity_key(join_keys=[ENTITY_KEY], entity_values=[value(string_val=row[ENTITY_KEY])])
            key_bytes = serialize(key, entity_key_serialization_version=version)
            event_ts = naive(row[EVENT_TIME])  # the push source has no created-timestamp column: None
            stored += [
                (key_bytes, name, *encode(name, make, row[name]), event_ts, None) for name, make in fields
            ]
        conn = self._store._get_conn(self._config)  # Feast's own connection, as its write asks for it
        with conn:
            conn.executemany(self._sql, stored)


class ValueCodec:
    """A feature value's (serialized ValueProto, value_text), as Feast stores them, remembered per
    feature and value for the values that recur.

    Strings, integers and booleans are remembered, keyed with their type (True == 1, but not as a
    proto). Floats are made every time: -0.0 equals 0.0 and NaN equals nothing, so a memo keyed on
    them could hand back another value's bytes, or grow with every NaN. At most `limit` values are
    kept (then new ones are made each time, as before); a feature whose values never recur costs a
    lookup that misses."""

    def __init__(self, text: Callable[[Any, bool], tuple[Any, Any]], limit: int = 50_000) -> None:
        self._text, self.limit = text, limit
        self._known: dict[tuple[str, type, Any], tuple[bytes, Any]] = {}

    def encode(self, name: str, make: Callable[[Any], Any], value: Any) -> tuple[bytes, Any]:
        kind = type(value)
        if kind is float:
            return self._made(make, value)
        key = (name, kind, value)
        found = self._known.get(key)
        if found is None:
            found = self._made(make, value)
            if len(self._known) < self.limit:
                self._known[key] = found
        return found

    def _made(self, make: Callable[[Any], Any], value: Any) -> tuple[bytes, Any]:
        proto = make(value)
        return proto.SerializeToString(), self._text(proto, False)[0]
