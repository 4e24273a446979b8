"""Broker failover on the cluster profile's bus: three locked-down KRaft brokers (`LocalKafkaCluster`:
384 MB heap each, 3 replicas, min.insync.replicas 2); the leader of a record partition gets SIGKILL
mid-stream, `--runs` times on one fresh cluster (each run kills whoever leads partition 0 by then).

Each run, on records.raw (3 partitions): a consumer group (the ingest principal, a commit after every
batch) follows the topic and is caught up (lag 0); a producer (the producer principal; acks="all",
enable_idempotence=True, linger_ms=5: the services' settings) sends numbered records keyed by their
number at `--rate`/s; after `--settle` s the leader of partition 0 is killed. Measured from the kill:
(a) producers resume: the first acknowledgement of a record sent after the kill to a partition the
killed broker led (only a new leader can give it); (b) consumers catch up: the first time, producers
having resumed, that the group's lag (end offsets read first, then its committed offsets) is 0,
polled every 0.2 s, so as coarse as that and the stream's jitter. Unacknowledged sends and
acknowledged records the group never saw are counted. The killed broker then restarts on its data:
seconds until it answers, and until it is back in the ISR of every records.raw partition.
(c) RSS: VmRSS summed over the three JVMs, after start-up, the topics and `--idle` s; again after the
drills. Ports `--port`, +10, +20 (controllers one above each), a temp folder; no assertion on timings.
Writes bench/results/broker_failover.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from contracts.access import PRODUCER
from contracts.topics import RECORDS_RAW
from infra import bus_access
from infra.kafka_cluster import LocalKafkaCluster
from infra.settings import REPO_ROOT, InfraSettings
from infra.topics import ensure_topics, platform_topics

BENCH_PORT = 20092
RESULTS = Path(__file__).resolve().parent / "results" / "broker_failover.json"
PARTITIONS = 3
POLL_S = 0.2
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.broker_failover", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="drills on the one cluster")
    p.add_argument("--rate", type=float, default=50.0, help="records per second the producer sends")
    p.add_argument("--settle", type=float, default=5.0, help="seconds of streaming before the kill")
    p.add_argument("--idle", type=float, default=10.0, help="seconds idle before the RSS is read")
    p.add_argument("--timeout", type=float, default=120.0, help="give a drill up after this many s")
    p.add_argument("--port", type=int, default=BENCH_PORT, help="node 1's client port")
    return p.parse_args(argv)


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Seconds until `predicate` holds (polled every POLL_S)."""
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"gave up after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


@dataclass
class Stream:
    """What the producer sent and had acknowledged, and what the group saw, in one run."""

    run: int
    killed_at: float | None = None
    sent: int = 0
    failed: int = 0
    acks: list[tuple[float, int, bool, int]] = field(default_factory=list)  # time, partition, after kill, n
    seen: set[int] = field(default_factory=set)

    def value(self, number: int) -> bytes:
        return f"{self.run}:{number}".encode()

    def resumed_at(self, partitions: set[int]) -> float | None:
        after = [t for t, p, after_kill, _ in self.acks if after_kill and p in partitions]
        return min(after) if after else None


def failover_producer(cluster: LocalKafkaCluster) -> AIOKafkaProducer:
    """The producer principal's client, as the drills use it: acks=all and idempotent (nothing lost or
    doubled across a leader change), with a request timeout longer than a broker's fencing."""
    return AIOKafkaProducer(
        **cluster.client_options(PRODUCER),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=60000,
    )


async def produce(cluster: LocalKafkaCluster, stream: Stream, rate: float, stop: asyncio.Event) -> None:
    producer = failover_producer(cluster)
    await producer.start()
    pending = []
    try:
        next_send = time.monotonic()
        while not stop.is_set():
            number, after_kill = stream.sent, stream.killed_at is not None
            future = await producer.send(RECORDS_RAW, stream.value(number), key=str(number).encode())

            def done(f: asyncio.Future[Any], n: int = number, after: bool = after_kill) -> None:
                if f.cancelled() or f.exception() is not None:
                    stream.failed += 1
                else:
                    stream.acks.append((time.monotonic(), f.result().partition, after, n))

            future.add_done_callback(done)
            pending.append(future)
            stream.sent += 1
            next_send += 1 / rate
            await asyncio.sleep(max(0.0, next_send - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 120)
    finally:
        await producer.stop()


async def follow(consumer: AIOKafkaConsumer, stream: Stream, stop: asyncio.Event) -> None:
    prefix = f"{stream.run}:".encode()
    while not stop.is_set():
        try:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                stream.seen.update(
                    int(m.value[len(prefix) :]) for m in messages if m.value and m.value.startswith(prefix)
                )
            if batches:
                await consumer.commit()
        except KafkaError as error:  # the group's coordinator moving: the next commit covers this batch
            console.print(f"  [dim]group: {error!r}[/dim]")


async def one_run(cluster: LocalKafkaCluster, run: int, args: argparse.Namespace) -> dict[str, Any]:
    described = await asyncio.to_thread(cluster.partitions, RECORDS_RAW)
    victim = int(described[0]["leader"])
    led = {p for p, info in described.items() if info["leader"] == victim}
    group = f"ingest.bench-failover-{run}"
    tps = [TopicPartition(RECORDS_RAW, p) for p in range(PARTITIONS)]
    ops = bus_access.kafka_options(cluster.bootstrap_servers)
    admin = AIOKafkaAdminClient(**ops, request_timeout_ms=5000)
    ends = AIOKafkaConsumer(**ops, group_id=None, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(
        RECORDS_RAW,
        **cluster.client_options("ingest"),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    stream, stop_producing, stop_following = Stream(run), asyncio.Event(), asyncio.Event()
    for client in (admin, ends, consumer):
        await client.start()

    async def lag_is_zero() -> bool:
        try:
            end = await asyncio.wait_for(ends.end_offsets(tps), 5)
            committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 5)
        except (KafkaError, TimeoutError):
            return False
        return sum(max(0, end[tp] - (committed[tp].offset if tp in committed else 0)) for tp in tps) == 0

    following = asyncio.create_task(follow(consumer, stream, stop_following))
    try:
        await until(lag_is_zero, args.timeout, "the group to catch up before the stream")
        producing = asyncio.create_task(produce(cluster, stream, args.rate, stop_producing))
        await asyncio.sleep(args.settle)
        stream.killed_at = time.monotonic()
        pid = await asyncio.to_thread(cluster.kill, victim)
        console.print(f"run {run}: killed node {victim} (pid {pid}), leader of partitions {sorted(led)}")

        async def resumed() -> bool:
            return stream.resumed_at(led) is not None

        await until(resumed, args.timeout, "the producer to resume")
        await until(lag_is_zero, args.timeout, "the group to catch up")
        caught_up = time.monotonic()
        stop_producing.set()
        await producing
        acknowledged = {n for *_, n in stream.acks}

        async def delivered() -> bool:
            return acknowledged <= stream.seen

        await until(delivered, args.timeout, "the group to see every acknowledged record")
    finally:
        stop_producing.set()
        stop_following.set()
        await following
        for client in (consumer, ends):
            await client.stop()
        await admin.close()
    restarted = time.monotonic()
    await asyncio.to_thread(cluster.start_node, victim, 180)
    answers_s = time.monotonic() - restarted

    async def back_in_isr() -> bool:
        partitions = await asyncio.to_thread(cluster.partitions, RECORDS_RAW)
        return all(victim in p["isr"] for p in partitions.values())

    await until(back_in_isr, args.timeout, f"node {victim} to rejoin the ISR")
    resumed_at = stream.resumed_at(led)
    assert resumed_at is not None
    return {
        "run": run,
        "killed_node": victim,
        "partitions_it_led": sorted(led),
        "producers_resume_s": resumed_at - stream.killed_at,
        "consumers_catch_up_s": caught_up - stream.killed_at,
        "records_sent": stream.sent,
        "records_acknowledged": len(acknowledged),
        "sends_failed": stream.failed,
        "acknowledged_not_seen_by_group": len(acknowledged - stream.seen),
        "restart_until_it_answers_s": answers_s,
        "restart_until_back_in_isr_s": time.monotonic() - restarted,
    }


FIGURES = [  # (json key, title)
    ("producers_resume_s", "kill -> producers resume (s)"),
    ("consumers_catch_up_s", "kill -> consumer lag 0 (s)"),
    ("restart_until_it_answers_s", "restart -> broker answers (s)"),
    ("restart_until_back_in_isr_s", "restart -> back in ISR (s)"),
]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    exe = Path(sys.executable)
    python = str(exe.relative_to(REPO_ROOT)) if exe.is_relative_to(REPO_ROOT) else str(exe)
    given = sys.argv[1:] if argv is None else argv
    command = f"{python} -m bench.broker_failover {shlex.join(given)}".strip()
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    loadavg = os.getloadavg()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # each retry of the drill is expected
    with tempfile.TemporaryDirectory(prefix="mlops-bench-cluster-") as tmp:
        home = Path(tmp)
        cluster = LocalKafkaCluster(
            home=home, jars_dir=InfraSettings().jars_dir, port=args.port, secrets_dir=home / "secrets"
        )
        try:
            started = time.monotonic()
            cluster.start(timeout_s=240)
            start_s = time.monotonic() - started
            ensure_topics(cluster.bootstrap_servers, platform_topics(PARTITIONS, 1, cluster.replication))
            console.print(
                f"cluster up in {start_s:.1f} s on {cluster.bootstrap_servers}; idling {args.idle:.0f} s"
            )
            time.sleep(args.idle)
            rss_idle = cluster.rss_mib()
            runs = [asyncio.run(one_run(cluster, run, args)) for run in range(1, args.runs + 1)]
            time.sleep(args.idle)
            rss_after = cluster.rss_mib()
        finally:
            cluster.stop()
    medians = {key: median(r[key] for r in runs) for key, _ in FIGURES}
    table = Table(title="Broker failover, three brokers (kill -9 of a partition leader)")
    table.add_column("figure")
    for r in runs:
        table.add_column(f"run {r['run']} (node {r['killed_node']})", justify="right")
    table.add_column("median", justify="right", style="bold")
    for key, title in FIGURES:
        table.add_row(title, *(f"{r[key]:.1f}" for r in runs), f"{medians[key]:.1f}")
    for key in ("sends_failed", "acknowledged_not_seen_by_group"):
        table.add_row(key.replace("_", " "), *(str(r[key]) for r in runs), "")
    console.print(table)
    console.print(
        f"cluster start {start_s:.1f} s; RSS of the 3 JVMs: {rss_idle:.0f} MiB idle,"
        f" {rss_after:.0f} MiB after the drills"
    )
    results = {
        "benchmark": "broker_failover",
        "command": command,
        "date": date,
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start_and_end": [loadavg, os.getloadavg()]},
        "parameters": vars(args) | {"nodes": cluster.nodes, "heap": cluster.heap, "partitions": PARTITIONS},
        "cluster_start_s": start_s,
        "rss_idle_mib": rss_idle,
        "rss_after_drills_mib": rss_after,
        "runs": runs,
        "median": medians,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
