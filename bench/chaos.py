"""Fault injection: stream loan applications through the whole stack (`mlops up`) while random
services and the Kafka broker are SIGKILLed and restarted at seeded random times, then check that
nothing was lost, doubled or forged:

1. every raw offset of records.raw has exactly one outcome (one clean or one rejected event);
2. the audit trail matches Kafka one to one (coordinates and digests, or the event id of a copy);
3. Feast's online features equal the last clean record of every entity;
4. the audit chain verifies (`mlops audit verify --checkpoints-from` and GET /verify).

    .venv/bin/python -m bench.chaos --seed 1 --kills 20 --records 3000 [--rate 15] [--keep]

Prints a summary and writes bench/results/chaos-seed<seed>.json. Its own state folder and ports
(broker 19792, services from 14101), loopback only. Write-up: docs/chaos.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from bench import chaos_read as read
from bench.chaos_checks import (
    Check,
    Kill,
    audit_matches_kafka,
    chain_verifies,
    kill_plan,
    last_clean_per_entity,
    online_matches_last_clean,
    raw_accounting,
)
from bench.chaos_stack import KAFKA, Stack, stack_env
from contracts.events import LabelObserved, LabelObservedPayload
from contracts.registry import encode_event
from contracts.topics import LABELS_OBSERVED, RECORDS_CLEAN, RECORDS_RAW, topic_names
from infra.bus_access import kafka_options
from infra.settings import REPO_ROOT, InfraSettings

RESULTS = REPO_ROOT / "bench" / "results"


@dataclass
class ChaosConfig:
    seed: int = 1
    kills: int = 20
    records: int = 3000
    rate: float = 15.0  # records per second; the kills are spread over the stream's duration
    update_share: float = 0.05  # records that resend an earlier entity with new values
    bad_every: int = 50  # every N-th record is malformed (ingest must reject it, not lose it)
    kafka_port: int = 19792
    first_service_port: int = 14101
    catch_up_timeout_s: float = 600.0
    state_dir: Path | None = None  # default: a temporary folder, removed afterwards unless `keep`
    keep: bool = False


@dataclass
class Report:
    config: dict[str, Any]
    kills: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)  # exits nobody caused
    timings_s: dict[str, float] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    not_ready_at_end: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.not_ready_at_end

    def kills_by_target(self) -> dict[str, int]:
        return dict(Counter(k["target"] for k in self.kills if k["was_alive"]))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "config": self.config, "kills_by_target": self.kills_by_target(),
                "crashes_by_target": dict(Counter(c["target"] for c in self.crashes)),
                "kills": self.kills, "crashes": self.crashes, "timings_s": self.timings_s,
                "produced": self.produced, "not_ready_at_end": self.not_ready_at_end,
                "checks": {c.name: c.as_dict() for c in self.checks}}  # fmt: skip


# -- the stream -------------------------------------------------------------------------------------
def application_stream(seed: int) -> Any:
    """The demo applications (the module may live in workbench/ or in services/ingest/)."""
    try:
        from workbench.demo_data import ApplicationStream  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from workbench.demo_data import ApplicationStream  # type: ignore[no-redef,unused-ignore]
    return iter(ApplicationStream(seed=seed, id_prefix=f"chaos-{seed}", notes_share=0.2))


def planned_records(config: ChaosConfig) -> list[tuple[bytes, bytes, LabelObserved | None]]:
    """(key, value, label) per raw record: demo applications, some resent with new values, some broken."""
    rng, stream = random.Random(config.seed), application_stream(config.seed)
    sent: list[dict[str, Any]] = []
    planned: list[tuple[bytes, bytes, LabelObserved | None]] = []
    for i in range(config.records):
        app = next(stream)
        record, label = dict(app.record), app.label
        if sent and rng.random() < config.update_share:  # the same entity again, later, with new values
            changed = ("applied_at", "credit_amount", "duration_in_month")
            record = {**rng.choice(sent), **{name: record[name] for name in changed}}
        key = str(record["application_id"]).encode()
        if config.bad_every and i % config.bad_every == config.bad_every - 1:
            planned.append((key, b'{"application_id": "' + key + b'", broken', None))
            continue
        sent.append(record)
        payload = LabelObservedPayload(dataset="loan_applications", entity_id=record["application_id"],
                                       label=label, event_time=record["applied_at"])  # fmt: skip
        planned.append((key, msgspec.json.encode(record), LabelObserved.create(payload, producer="chaos")))
    return planned


async def stream(
    bootstrap: str,
    config: ChaosConfig,
    planned: list[tuple[bytes, bytes, LabelObserved | None]],
    produced: dict[str, int],
) -> None:
    """Send at `config.rate`; a send the dead broker refused is sent again on a new producer (a copy
    that did land is a second raw offset, which must get its own outcome like any other)."""
    started = time.monotonic()
    producer: AIOKafkaProducer | None = None
    for i, (key, value, label) in enumerate(planned):
        await asyncio.sleep(max(0.0, started + i / config.rate - time.monotonic()))
        while True:
            try:
                if producer is None:
                    producer = AIOKafkaProducer(
                        **kafka_options(bootstrap), acks="all", enable_idempotence=True,
                        request_timeout_ms=10_000, linger_ms=5,
                    )  # fmt: skip
                    await producer.start()
                await producer.send_and_wait(RECORDS_RAW, value, key)
                if label is not None:
                    await producer.send_and_wait(LABELS_OBSERVED, encode_event(label), label.key())
                break
            except Exception:  # the broker is down: retry until it is back
                produced["send_retries"] += 1
                if producer is not None:
                    await _close(producer)
                producer = None
                await asyncio.sleep(1)
        produced["records"] += 1
    if producer is not None:
        await _close(producer)


async def _close(producer: AIOKafkaProducer) -> None:
    # A producer of a dead broker may fail to flush; its sends are retried on a new one.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 15)


# -- the faults -------------------------------------------------------------------------------------
async def inject(stack: Stack, plan: list[Kill], started: float, report: Report) -> None:
    for kill in plan:
        await asyncio.sleep(max(0.0, started + kill.at_s - time.monotonic()))
        await heal(stack, report)
        at = time.monotonic() - started
        alive = await asyncio.to_thread(stack.kill, kill.target)
        await asyncio.sleep(kill.down_s)
        await asyncio.to_thread(stack.restart, kill.target)
        report.kills.append({**asdict(kill), "at_s": round(at, 1), "was_alive": alive})
        state = "alive" if alive else "already down"
        print(f"  {time.strftime('%H:%M:%S')} {at:6.1f}s  SIGKILL {kill.target:<9} ({state}); "
              f"restarted after {kill.down_s:.1f}s", flush=True)  # fmt: skip


async def heal(stack: Stack, report: Report) -> None:
    """Restart what died on its own (a crash is a finding: it is reported, not hidden)."""
    for name in await asyncio.to_thread(stack.dead):
        why = stack.last_error(name) if name != KAFKA else ""
        noticed = time.strftime("%H:%M:%S")
        report.crashes.append({"target": name, "noticed_at": noticed, "last_error": why})
        print(f"  {noticed} {name} exited on its own ({why or 'no error logged'}); restarting it", flush=True)
        await asyncio.to_thread(stack.restart, name)


async def settle(stack: Stack, report: Report, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await heal(stack, report)
        if not (late := await asyncio.to_thread(stack.not_ready)):
            return
        await asyncio.sleep(2)
    report.not_ready_at_end = late


async def catch_up(stack: Stack, timeout_s: float, report: Report) -> read.Ends:
    """Wait until ingest, features and audit (one group over every topic) have committed past everything
    there is, in pipeline order; the ends the audit had to reach are returned (later messages, e.g.
    new checkpoints, need not be stored yet)."""
    started = time.monotonic()
    stages = [("ingest", [("ingest", RECORDS_RAW)]), ("features", [("features", RECORDS_CLEAN)]),
              ("audit", [("audit", topic) for topic in topic_names()])]  # fmt: skip
    audit_ends: read.Ends = {}
    for stage, groups in stages:
        for group, topic in groups:
            ends = await read.end_offsets(stack.bootstrap, [topic])
            if not await read.wait_caught_up(stack.bootstrap, group, ends, timeout_s):
                print(f"  {group} did not catch up on {topic} within {timeout_s:.0f}s", flush=True)
            audit_ends |= ends if stage == "audit" else {}
        report.timings_s[f"catch_up_{stage}"] = round(time.monotonic() - started, 1)
    return audit_ends


# -- the run ----------------------------------------------------------------------------------------
async def chaos(stack: Stack, config: ChaosConfig, report: Report) -> None:
    duration = config.records / config.rate
    targets = (*stack.services, KAFKA)
    plan = kill_plan(config.seed, config.kills, targets, (0.05 * duration, 0.95 * duration))
    planned = planned_records(config)  # before the clock starts: it takes seconds
    started = time.monotonic()
    produced: Counter[str] = Counter()
    now = time.strftime("%H:%M:%S")
    print(f"{now} streaming {config.records} records at {config.rate}/s, {len(plan)} kills", flush=True)
    await asyncio.gather(
        stream(stack.bootstrap, config, planned, produced), inject(stack, plan, started, report)
    )
    report.produced = dict(produced)
    report.timings_s["stream_and_kills"] = round(time.monotonic() - started, 1)
    settled = time.monotonic()
    await settle(stack, report, 420)
    report.timings_s["all_ready_again"] = round(time.monotonic() - settled, 1)
    audit_ends = await catch_up(stack, config.catch_up_timeout_s, report)
    report.checks = await checks(stack, audit_ends)


async def checks(stack: Stack, audit_ends: read.Ends) -> list[Check]:
    audit_rows = read.audit_rows(stack.state_dir / "audit" / "audit.db")  # first the store, then Kafka
    records = await read.read_topics(stack.bootstrap, topic_names())
    last = last_clean_per_entity(read.clean_records(records))
    from feature_repo import FEATURES

    online = await asyncio.to_thread(read.online_features, stack.state_dir / "feast", "mlops", sorted(last))
    cli = stack.mlops("audit", "verify", "--checkpoints-from", stack.bootstrap)
    try:
        cli_report = json.loads(cli.stdout)
    except ValueError:
        cli_report = {"intact": False, "exit_code": cli.returncode, "stderr": cli.stderr[-2000:]}
    with stack.client("audit", "auditor") as auditor:
        http = auditor.get("/verify")
    http_report = http.json() if http.status_code == 200 else {"intact": False, "status": http.status_code}
    return [
        raw_accounting(read.raw_coordinates(records), read.outcomes(records)),
        audit_matches_kafka(read.kafka_messages(records), audit_rows, audit_ends),
        online_matches_last_clean(last, online, FEATURES),
        chain_verifies(cli_report, http_report),
    ]


def run(config: ChaosConfig) -> Report:
    """Start the stack, run the stream and the kills, check, stop the stack. Bounded in time."""
    report = Report(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()})
    (REPO_ROOT / ".local").mkdir(exist_ok=True)
    state = config.state_dir or Path(tempfile.mkdtemp(prefix="chaos-", dir=REPO_ROOT / ".local"))
    env = stack_env(state, InfraSettings().jars_dir, config.kafka_port, config.first_service_port)
    stack = Stack(env)
    try:
        report.timings_s["mlops_up"] = round(stack.up(), 1)
        print(
            f"mlops up: {len(stack.services)} services ready in {report.timings_s['mlops_up']}s", flush=True
        )
        asyncio.run(chaos(stack, config, report))
    finally:
        stack.down()
        if not config.keep and config.state_dir is None:
            shutil.rmtree(state, ignore_errors=True)
    return report


def summary(report: Report) -> str:
    crashes = Counter(c["target"] for c in report.crashes)
    lines = [f"kills survived: {sum(report.kills_by_target().values())} "
             f"(not ready at the end: {report.not_ready_at_end or 'none'})"]  # fmt: skip
    lines += [
        f"  {t:<9} {n} kill(s), {crashes[t]} exit(s) on its own"
        for t, n in sorted(report.kills_by_target().items())
    ]
    for check in report.checks:
        counts = ", ".join(f"{k} {v}" for k, v in check.counts.items())
        lines.append(f"{'PASS' if check.ok else 'FAIL'} {check.name}: {counts}")
    lines.append(f"timings (s): {report.timings_s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    defaults = ChaosConfig()
    for name in ("seed", "kills", "records", "kafka_port", "first_service_port"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--rate", type=float, default=defaults.rate, help="records per second")
    parser.add_argument("--state-dir", type=Path, help="keep the stack's state here (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state folder")
    args = parser.parse_args(argv)
    # The producer retries while the broker is dead: aiokafka logs every refused connection.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.kills < 1 or args.records < 1 or args.rate <= 0:
        parser.error("--kills, --records and --rate must be positive")
    config = ChaosConfig(seed=args.seed, kills=args.kills, records=args.records, rate=args.rate,
                         kafka_port=args.kafka_port, first_service_port=args.first_service_port,
                         state_dir=args.state_dir, keep=args.keep)  # fmt: skip
    report = run(config)
    print(summary(report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"chaos-seed{config.seed}.json"
    out.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    print(f"written to {out.relative_to(REPO_ROOT)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
