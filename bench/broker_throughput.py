"""Broker ceiling: what one local Kafka node moves with the client the services use (aiokafka).

Measured, per run on a fresh topic (`--partitions`), with `--size`-byte values of seeded random bytes
(a pool of 1024 distinct payloads, cycled; no keys, no compression), acks="all", enable_idempotence=True,
linger_ms=5 and the services' max_request_size / max_partition_fetch_bytes:

- produce (pipelined): `--messages` sends, `--window` futures in flight, each window gathered before
  the next; timed from the first send to the last acknowledgement. Producer start-up and one warm-up
  record per partition (so the fresh topic's leader election is settled) stay off the clock.
- produce, one at a time: `--serial` `send_and_wait` calls on a second fresh topic; reports msg/s and
  the p50/p99 latency of one acknowledged send. This is latency-bound, not a throughput figure.
- consume: a fresh consumer group (no commits) reads the pipelined topic from the beginning to its end
  with `getmany`; timed from partition assignment to the last record (warm-ups included in the count).
  The group join (subscribe to assignment) is reported separately.
- broker start (only when it runs its own broker): wall time of `LocalKafka.start()` on a fresh state
  folder (KRaft storage format included, jars cached) until the broker answers a metadata request.

MB is 10**6 bytes of message value. Reported: each run, and the median of each figure over the runs.
`--warmup` runs (default 2) go first and are kept out of the medians: on a freshly started broker the
first ~200k messages are about half as fast while the JVM warms up, and services meet a warm broker.
Unless `--bootstrap` is given, the broker is a private LocalKafka on ports 19492/19493 in a temp folder,
so a running dev stack or test broker is never touched. `--security` picks that broker: `plaintext`,
`scram` (the locked-down bus: SASL_PLAINTEXT/SCRAM-SHA-512 and ACLs, reached as the super user), or
`both` (the default: the two side by side, runs interleaved; bench/broker_security.py). With
`--bootstrap` the broker's own security applies (`kafka_options`). Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from statistics import median
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from infra.bus_access import kafka_options
from infra.kafka_local import LocalKafka
from infra.settings import REPO_ROOT, InfraSettings
from infra.topics import TopicPlan, ensure_topics_async
from servicekit.broker import MAX_REQUEST_BYTES

BENCH_PORT, BENCH_CONTROLLER_PORT = 19492, 19493
SECURITY_MODES = ("plaintext", "scram", "both")
RESULTS = Path(__file__).resolve().parent / "results" / "broker_throughput.json"
SEED, POOL = 20240501, 1024
STALL_S = 60.0  # a consumer that gets nothing for this long is stuck: fail instead of hanging

console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.broker_throughput", description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000, help="messages per run (pipelined produce)")
    p.add_argument("--runs", type=int, default=5, help="measured runs, each on fresh topics")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (a fresh broker JVM is slow)")
    p.add_argument("--size", type=int, default=1024, help="value size in bytes")
    p.add_argument("--partitions", type=int, default=3, help="partitions of each bench topic")
    p.add_argument("--window", type=int, default=1000, help="pipelined sends in flight per gather")
    p.add_argument("--serial", type=int, default=1000, help="one-at-a-time sends per run (0: skip)")
    p.add_argument("--starts", type=int, default=3, help="timed broker starts (own broker only)")
    p.add_argument("--bootstrap", help="HOST:PORT of an existing broker (then no broker is started)")
    p.add_argument("--security", choices=SECURITY_MODES, help="private broker(s) to measure (default: both)")
    args = p.parse_args(argv)
    if args.bootstrap and args.security:
        p.error("--security picks the private broker; an existing broker (--bootstrap) is used as it is")
    args.security = args.security or ("external" if args.bootstrap else "both")
    if min(args.messages, args.runs, args.size, args.partitions, args.window) < 1:
        p.error("--messages, --runs, --size, --partitions and --window must be at least 1")
    return args


def payloads(size: int) -> list[bytes]:
    rng = random.Random(SEED)
    return [rng.randbytes(size) for _ in range(POOL)]


def producer(bootstrap: str, security: dict[str, Any] | None = None) -> AIOKafkaProducer:
    """The services' producer settings, as the super user (`kafka_options`) unless `security` is given."""
    options = kafka_options(bootstrap) if security is None else {"bootstrap_servers": bootstrap, **security}
    return AIOKafkaProducer(
        **options,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=MAX_REQUEST_BYTES,
        client_id="bench-producer",
    )


async def produce_pipelined(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    n: int,
    window: int,
    security: dict[str, Any] | None = None,
) -> float:
    """Seconds from the first send to the last acknowledgement of `n` pipelined sends. One untimed
    warm-up record per partition first, so leader election of the fresh topic stays off the clock."""
    prod = producer(bootstrap, security)
    await prod.start()
    try:
        partitions = await prod.partitions_for(topic)
        await asyncio.gather(*[await prod.send(topic, values[0], partition=p) for p in partitions])
        started = time.perf_counter()
        for first in range(0, n, window):
            futures = [await prod.send(topic, values[i % POOL]) for i in range(first, min(first + window, n))]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await prod.stop()


async def produce_serial(bootstrap: str, topic: str, values: list[bytes], n: int) -> list[float]:
    """Latency in seconds of each of `n` acknowledged sends, one after the other."""
    prod = producer(bootstrap)
    await prod.start()
    try:
        await prod.send_and_wait(topic, values[0])  # warm-up: first metadata fetch and batch for the topic
        latencies = []
        for i in range(n):
            started = time.perf_counter()
            await prod.send_and_wait(topic, values[i % POOL])
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await prod.stop()


class AssignedAt(ConsumerRebalanceListener):
    """Notes when the group hands this consumer its partitions: the join ends, reading starts."""

    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.at = self.at or time.perf_counter()


async def consume_all(bootstrap: str, topic: str, n: int) -> tuple[float, float, int]:
    """(seconds to join the group, seconds from assignment to the `n`-th record, bytes read)."""
    cons = AIOKafkaConsumer(
        **kafka_options(bootstrap),
        group_id=f"bench-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_REQUEST_BYTES,
        client_id="bench-consumer",
    )
    assigned = AssignedAt()
    await cons.start()
    try:
        cons.subscribe([topic], listener=assigned)
        opened = last_progress = time.perf_counter()
        count = nbytes = 0
        while count < n:
            batches = await cons.getmany(timeout_ms=1000)
            now = time.perf_counter()
            got = sum(len(records) for records in batches.values())
            if got:
                last_progress = now
                count += got
                nbytes += sum(len(r.value or b"") for records in batches.values() for r in records)
            elif now - last_progress > STALL_S:
                raise RuntimeError(f"consumer stalled at {count}/{n} records on {topic}")
        end = time.perf_counter()
        if count != n or assigned.at is None:
            raise RuntimeError(f"read {count} records from {topic}, expected {n}")
        return assigned.at - opened, end - assigned.at, nbytes
    finally:
        await cons.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_run(args: argparse.Namespace, bootstrap: str, run: int, values: list[bytes]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic, serial_topic = f"bench.broker.{tag}", f"bench.broker.{tag}.serial"
    await ensure_topics_async(bootstrap, [TopicPlan(t, args.partitions) for t in (topic, serial_topic)])
    mb = args.messages * args.size / 1e6
    produce_s = await produce_pipelined(bootstrap, topic, values, args.messages, args.window)
    result: dict[str, Any] = {
        "run": run,
        "topics": [topic, serial_topic],
        "produce_s": produce_s,
        "produce_msgs_per_s": args.messages / produce_s,
        "produce_mb_per_s": mb / produce_s,
    }
    if args.serial:
        lat = await produce_serial(bootstrap, serial_topic, values, args.serial)
        result |= {
            "serial_msgs_per_s": len(lat) / sum(lat),
            "serial_p50_ms": pct(lat, 0.5) * 1e3,
            "serial_p99_ms": pct(lat, 0.99) * 1e3,
        }
    on_topic = args.messages + args.partitions  # the warm-up records are read too
    join_s, consume_s, nbytes = await consume_all(bootstrap, topic, on_topic)
    return result | {
        "consume_join_s": join_s,
        "consume_s": consume_s,
        "consume_msgs_per_s": on_topic / consume_s,
        "consume_mb_per_s": nbytes / 1e6 / consume_s,
    }


async def run_all(args: argparse.Namespace, bootstrap: str) -> list[dict[str, Any]]:
    """`--warmup` runs (numbered below 1, kept out of the medians), then the `--runs` measured ones."""
    values = payloads(args.size)
    runs = []
    for run in range(1 - args.warmup, args.runs + 1):
        runs.append(await one_run(args, bootstrap, run, values))
        label = f"run {run}/{args.runs}" if run > 0 else "warm-up run (not counted)"
        console.print(
            f"{label}: produce {runs[-1]['produce_msgs_per_s']:,.0f} msg/s, "
            f"consume {runs[-1]['consume_msgs_per_s']:,.0f} msg/s"
        )
    await delete_topics(bootstrap, [t for r in runs for t in r["topics"]])
    return runs


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Leave no bench topics behind (it matters on a `--bootstrap` broker)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


def kafka_version(jars_dir: Path) -> str:
    jars = sorted(jars_dir.glob("kafka_2.*-*.jar"))
    return jars[0].stem.split("-", 1)[1] if jars else "unknown"


def machine_info(jars_dir: Path, external: bool) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        "java": java.splitlines()[0] if java else "unknown",
        "kafka": "external broker" if external else kafka_version(jars_dir),
        "aiokafka": aiokafka.__version__,
        "loadavg_at_start": os.getloadavg(),
        "mem_total_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
    }


def start_broker(
    args: argparse.Namespace, stack: ExitStack, jars_dir: Path, secure: bool = False, port: int = BENCH_PORT
) -> tuple[LocalKafka, list[float]]:
    """Start the private broker `--starts` times (fresh folder each); the last one stays up. `secure`:
    locked down (SASL/SCRAM, ACLs applied at start), its secrets folder in the same temp folder;
    the controller listens on `port` + 1."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-kafka-")))
    secrets_dir = tmp / "secrets" if secure else None
    name = "SCRAM broker" if secure else "broker"
    seconds: list[float] = []
    for i in range(max(1, args.starts)):
        kafka = LocalKafka(
            tmp / f"start{i}", jars_dir, port=port, controller_port=port + 1, secrets_dir=secrets_dir
        )
        started = time.perf_counter()
        stack.callback(kafka.stop)
        kafka.start(timeout_s=180)
        seconds.append(time.perf_counter() - started)
        console.print(f"{name} start {i + 1}/{args.starts}: {seconds[-1]:.1f} s")
        if i < args.starts - 1:
            kafka.stop()
    return kafka, seconds


FIGURES = [  # (json key, column title, format)
    ("produce_msgs_per_s", "produce msg/s", "{:,.0f}"),
    ("produce_mb_per_s", "produce MB/s", "{:.1f}"),
    ("consume_msgs_per_s", "consume msg/s", "{:,.0f}"),
    ("consume_mb_per_s", "consume MB/s", "{:.1f}"),
    ("consume_join_s", "group join s", "{:.2f}"),
    ("serial_msgs_per_s", "1-by-1 produce msg/s", "{:,.0f}"),
    ("serial_p50_ms", "1-by-1 p50 ms", "{:.2f}"),
    ("serial_p99_ms", "1-by-1 p99 ms", "{:.2f}"),
]


def report(
    runs: list[dict[str, Any]], medians: dict[str, float], starts: list[float], mode: str = ""
) -> None:
    figures = [f for f in FIGURES if f[0] in medians]
    table = Table(title=f"Broker ceiling{f' ({mode})' if mode else ''} (aiokafka, acks=all, idempotent)")
    table.add_column("figure")
    for r in runs:
        table.add_column(f"run {r['run']}", justify="right")
    table.add_column("median", justify="right", style="bold")
    for key, title, fmt in figures:
        table.add_row(title, *(fmt.format(r[key]) for r in runs), fmt.format(medians[key]))
    console.print(table)
    if starts:
        each = ", ".join(f"{s:.1f}" for s in starts)
        console.print(
            f"broker start to healthy (fresh folder, jars cached): median {median(starts):.1f} s ({each})"
        )


def command_line(argv: list[str] | None) -> str:
    exe = Path(sys.executable)
    python = str(exe.relative_to(REPO_ROOT)) if exe.is_relative_to(REPO_ROOT) else str(exe)
    given = sys.argv[1:] if argv is None else argv
    return f"{python} -m bench.broker_throughput {shlex.join(given)}".strip()


def medians_of(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, float]:
    return {key: median(r[key] for r in runs) for key in keys if key in runs[0]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.security == "both":
        from bench.broker_security import compare  # the side-by-side run reuses this module

        compare(args, command_line(argv))
        return
    jars_dir = InfraSettings().jars_dir
    command = command_line(argv)
    info = machine_info(jars_dir, external=bool(args.bootstrap))
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    starts: list[float] = []
    with ExitStack() as stack:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            kafka, starts = start_broker(args, stack, jars_dir, secure=args.security == "scram")
            bootstrap = kafka.bootstrap_servers
        every = asyncio.run(run_all(args, bootstrap))
    warmups, runs = [r for r in every if r["run"] < 1], [r for r in every if r["run"] >= 1]
    info["loadavg_at_end"] = os.getloadavg()
    medians = medians_of(runs, [key for key, _, _ in FIGURES])
    report(runs, medians, starts, args.security)
    params = vars(args) | {"acks": "all", "enable_idempotence": True, "linger_ms": 5}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "broker_throughput",
                "command": command,
                "date": date,
                "machine": info,
                "parameters": params,
                "broker_start_s": starts,
                "broker_start_median_s": median(starts) if starts else None,
                "warmup_runs": warmups,
                "runs": runs,
                "median": medians,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
