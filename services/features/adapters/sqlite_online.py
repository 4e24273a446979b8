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
"""

from __future__ import annotations

from typing import Any

from feature_repo.store import online_table, plain_sqlite_store


class SqliteUpsert:
    def __init__(self, store: Any, config: Any, view: Any) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.helpers import extract_text_and_num
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
        self._serialize, self._naive, self._text = serialize_entity_key, to_naive_utc, extract_text_and_num

    @classmethod
    def of(cls, provider: Any, config: Any, view: Any) -> SqliteUpsert | None:
        """The fast write for this provider's online store, or None where Feast must write."""
        store = plain_sqlite_store(provider, config)
        return None if store is None else cls(store, config, view)

    def write(self, prepared: list[Any]) -> None:
        """`prepared` as `online_write_batch` takes it: (entity key, values by feature, event time,
        created time)."""
        serialize, naive, text, version = self._serialize, self._naive, self._text, self._version
        rows = []
        for key, values, event_time, created in prepared:
            key_bytes = serialize(key, entity_key_serialization_version=version)
            event_ts, created_ts = naive(event_time), None if created is None else naive(created)
            rows += [
                (key_bytes, name, value.SerializeToString(), text(value, False)[0], event_ts, created_ts)
                for name, value in values.items()
            ]
        conn = self._store._get_conn(self._config)  # Feast's own connection, as its write asks for it
        with conn:
            conn.executemany(self._sql, rows)
