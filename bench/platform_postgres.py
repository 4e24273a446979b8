"""What the cluster profile's PostgreSQL is busy with during a phase of the platform benchmark: its
statistics views read before and after (commits, rows read by sequential scans against index
fetches, autovacuum and autoanalyze runs per table) and its active backends sampled while the phase
runs (which database, which kind of backend, which statement). Read as the superuser, who sees every
role's statements."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg

from bench.platform_stack import Stack
from infra.postgres_local import LocalPostgres
from infra.postgres_roles import DATABASES, SUPERUSER

TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins", "autovacuum_count",
                  "autoanalyze_count")  # fmt: skip
DATABASE_COUNTERS = ("xact_commit", "tup_returned", "tup_fetched", "tup_inserted", "blks_read", "temp_bytes")


class PostgresProbe:
    def __init__(self, stack: Stack, every_s: float = 1.0) -> None:
        server = LocalPostgres(stack.settings())
        self.conninfo: dict[str, Any] = {"host": "127.0.0.1", "port": server.port, "user": SUPERUSER,
                         "password": server.passwords()[SUPERUSER]}  # fmt: skip
        self.every_s = every_s
        self.active: Counter[str] = Counter()
        self.samples = 0
        self._before: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def _counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for database in DATABASES:
            with psycopg.connect(dbname=database, **self.conninfo) as conn:
                row = conn.execute(
                    f"SELECT {', '.join(DATABASE_COUNTERS)} FROM pg_stat_database WHERE datname = %s",
                    (database,),
                ).fetchone()
                out[database] = dict(zip(DATABASE_COUNTERS, row or (), strict=False))
                for name, *values in conn.execute(
                    f"SELECT relname, {', '.join(TABLE_COUNTERS)} FROM pg_stat_user_tables"
                ).fetchall():
                    out[f"{database}.{name}"] = dict(zip(TABLE_COUNTERS, values, strict=True))
        return out

    def _sample(self, conn: psycopg.Connection[Any]) -> list[str]:
        rows = conn.execute(
            # Autovacuum workers are active too: their query reads "autovacuum: VACUUM ...".
            "SELECT coalesce(datname, '-'), backend_type,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
            " FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
        ).fetchall()
        return [" | ".join(str(c) for c in row) for row in rows]

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(dbname="postgres", autocommit=True, **self.conninfo)

    async def _run(self) -> None:
        # One connection for the whole phase: a new one per sample would fork a backend each time.
        conn = await asyncio.to_thread(self._connect)
        try:
            while True:
                self.active.update(await asyncio.to_thread(self._sample, conn))
                self.samples += 1
                await asyncio.sleep(self.every_s)
        finally:
            conn.close()

    async def start(self) -> None:
        self._before = await asyncio.to_thread(self._counters)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        after = await asyncio.to_thread(self._counters)
        deltas = {
            name: {k: v - self._before.get(name, {}).get(k, 0) for k, v in values.items() if v is not None}
            for name, values in after.items()
        }
        return {
            "samples": self.samples,
            "active": dict(self.active.most_common(8)),
            "deltas": {n: {k: v for k, v in d.items() if v} for n, d in deltas.items() if any(d.values())},
        }
