"""Ingest throughput on the real broker, each figure beside the raw rate measured in the same run.

Per run, on fresh topics (3 partitions), with demo loan applications (about 1 KB each):
- produce: `--records` pipelined aiokafka sends of the structured records (acks=all, idempotent);
- passthrough: the ingest service shell (servicekit batch subscriber + ingest's batch publisher) with
  the validation/PII work replaced by copying the raw value: what a do-nothing service moves;
- structured: the real ingest handler on records without free text (structured PII by policy);
- free text: the real ingest handler on `--text-records` records with one free-text field (notes,
  Presidio on a spaCy nlp.pipe per batch);
- baseline: Presidio called once per record (a default AnalyzerEngine with all its recognizers, on
  the same en_core_web_sm model, then the AnonymizerEngine), on `--baseline` notes.
Each service figure is timed from the first batch handed to the handler to the last outcome
acknowledged by Kafka (raw topics are filled first; group join excluded). Medians over `--runs`.
RSS is that of this process, which runs the service in-process (the service plus the bench client).
The broker is a private LocalKafka on ports 19692/19693 unless `--bootstrap` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import msgspec
import psutil
from aiokafka import AIOKafkaProducer

from bench.common import bench_kafka
from infra.bus_access import kafka_options
from infra.topics import TopicPlan, ensure_topics_async
from services.ingest.app import create_app
from services.ingest.domain.events import OutMessage
from services.ingest.handlers import IngestHandler, RawInput
from services.ingest.settings import IngestSettings
from workbench.demo_data import ApplicationStream

PORT = 19692
RESULTS = Path(__file__).resolve().parent / "results" / "ingest_throughput.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_throughput")
    p.add_argument("--records", type=int, default=30_000, help="structured records per run")
    p.add_argument("--text-records", type=int, default=3_000, help="records with free text per run")
    p.add_argument("--baseline", type=int, default=300, help="notes scrubbed one Presidio call each")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bootstrap", help="an existing broker (no broker is started)")
    return p.parse_args(argv)


def values(n: int, notes: bool, seed: int) -> list[tuple[bytes, bytes]]:
    apps = ApplicationStream(seed=seed, id_prefix=f"b{seed}", notes_share=1.0 if notes else 0.0).take(n)
    return [(a.record["application_id"].encode(), msgspec.json.encode(a.record)) for a in apps]


async def fill(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> float:
    """Produce pipelined; returns records per second."""
    await ensure_topics_async(bootstrap, [TopicPlan(topic, 3)])
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}")  # warm-up: metadata and leader (counted as 1 record)
        started = time.perf_counter()
        for first in range(0, len(records), 2000):
            chunk = records[first : first + 2000]
            await asyncio.gather(*[await producer.send(topic, v, k) for k, v in chunk])
        return len(records) / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def service_rate(bootstrap: str, records: Sequence[tuple[bytes, bytes]], passthrough: bool) -> float:
    run = uuid.uuid4().hex[:8]
    settings = IngestSettings(
        kafka_bootstrap_servers=bootstrap,
        group_id=f"bench-{run}",
        raw_topic=f"bench.raw.{run}",
        clean_topic=f"bench.clean.{run}",
        rejected_topic=f"bench.rejected.{run}",
        # A fresh ledger of repeated ids: the bench's ids repeat from run to run (they would be resends).
        ledger_path=Path(tempfile.mkdtemp(prefix="ingest-ledger-")) / "ledger.db",
    )
    await fill(bootstrap, settings.raw_topic, records)
    for topic in (settings.clean_topic, settings.rejected_topic):
        await ensure_topics_async(bootstrap, [TopicPlan(topic, 3)])
    app = create_app(settings)
    handler: IngestHandler = app.state.handler
    expected = len(records) + 1
    seen = {"n": 0, "first": 0.0, "last": 0.0}
    done = asyncio.Event()
    original = handler.process
    if passthrough:

        def copy(batch: Sequence[RawInput]) -> list[OutMessage]:
            return [OutMessage(settings.clean_topic, r.key, r.value or b"", "Raw", "", "ok") for r in batch]

        handler.process = copy  # type: ignore[method-assign]
    handle = handler.handle

    async def timed(batch: Sequence[RawInput]) -> list[OutMessage]:
        seen["first"] = seen["first"] or time.perf_counter()
        out = await handle(batch)
        seen["n"] += len(batch)
        if seen["n"] >= expected:
            seen["last"] = time.perf_counter()
            done.set()
        return out

    handler.handle = timed  # type: ignore[method-assign]
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(done.wait(), timeout=1800)
    handler.process = original  # type: ignore[method-assign]
    return expected / (seen["last"] - seen["first"])


def baseline_rate(texts: list[str]) -> float:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from services.ingest.adapters.presidio import NLP_CONF

    analyzer = AnalyzerEngine(nlp_engine=NlpEngineProvider(conf_file=str(NLP_CONF)).create_engine())
    anonymizer = AnonymizerEngine()
    analyzer.analyze(texts[0], language="en")
    started = time.perf_counter()
    for text in texts:
        anonymizer.anonymize(text=text, analyzer_results=analyzer.analyze(text, language="en"))  # type: ignore[arg-type]
    return len(texts) / (time.perf_counter() - started)


async def one_run(bootstrap: str, args: argparse.Namespace, run: int) -> dict[str, float]:
    structured = values(args.records, notes=False, seed=100 + run)
    with_text = values(args.text_records, notes=True, seed=200 + run)
    result = {"produce_per_s": await fill(bootstrap, f"bench.produce.{uuid.uuid4().hex[:8]}", structured)}
    result["passthrough_per_s"] = await service_rate(bootstrap, structured, passthrough=True)
    result["structured_per_s"] = await service_rate(bootstrap, structured, passthrough=False)
    result["rss_mb_structured"] = psutil.Process().memory_info().rss / 1e6
    result["free_text_per_s"] = await service_rate(bootstrap, with_text, passthrough=False)
    result["rss_mb_free_text"] = psutil.Process().memory_info().rss / 1e6
    notes = [json.loads(v)["notes"] for _, v in with_text[: args.baseline]]
    result["baseline_presidio_per_record_per_s"] = baseline_rate(notes)
    print(json.dumps({"run": run, **result}))
    return result


async def bench(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = [await one_run(bootstrap, args, i) for i in range(args.runs)]
    med = {key: median(r[key] for r in runs) for key in runs[0]}
    med["structured_vs_produce"] = med["structured_per_s"] / med["produce_per_s"]
    med["structured_vs_passthrough"] = med["structured_per_s"] / med["passthrough_per_s"]
    med["free_text_vs_passthrough"] = med["free_text_per_s"] / med["passthrough_per_s"]
    med["free_text_vs_per_record_presidio"] = (
        med["free_text_per_s"] / med["baseline_presidio_per_record_per_s"]
    )
    return {"runs": runs, "median": med}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    info = {
        "benchmark": "ingest_throughput",
        "command": ".venv/bin/python -m bench.ingest_throughput " + " ".join(argv),
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "parameters": vars(args),
    }
    with tempfile.TemporaryDirectory() as tmp, bench_kafka(args.bootstrap, Path(tmp), PORT) as bootstrap:
        result = asyncio.run(bench(bootstrap, args))
    info["loadavg_at_end"] = os.getloadavg()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({**info, **result}, indent=2) + "\n")
    print(json.dumps(result["median"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
