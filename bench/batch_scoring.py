"""Batch scoring throughput: rows/s for the whole path (upload, check, score, write, download) against a
running serving service, and the in-process scorer alone as the baseline.

What it does:
1. a private Kafka (LocalKafka on `--kafka-port`) unless `--bootstrap`; a temp MLflow with the
   reference model (as training registers it), a temp Feast repo, API keys (bench.serving_latency);
2. draws `--rows` new applicants from the project's generator (workbench/applicant_generator.py,
   fitted to German credit) into one Parquet file (and CSV with `--format csv`);
3. starts `python -m services.serving` (1 process) and, `--runs` times, POSTs the file to
   /batch-scores, polls the job, downloads the scores; while it runs, a thread sends one /predict
   every 50 ms and records whether it answered and how long it took;
4. in process: the same model loaded the way serving loads it, the same file read, checked and scored
   in the same chunks (domain/batch.py), scores only and with the Parquet output written.
Medians over the runs. `python -m bench.batch_scoring [--rows 1000000] [--runs 3] [--format parquet]
[--kafka-port 19692] [--serving-port 19711] [--bootstrap HOST:PORT]`. Results:
bench/results/batch_scoring.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from bench.common import bench_kafka
from bench.serving_latency import env_base, machine, prepare, start, wait_http
from infra.topics import ensure_topics, platform_topics

RESULTS = Path(__file__).resolve().parent / "results" / "batch_scoring.json"
PARQUET = "application/vnd.apache.parquet"
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.batch_scoring", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the scored file")
    p.add_argument("--runs", type=int, default=3, help="runs through the service (median reported)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file uploaded")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="SERVING_BATCH_CHUNK_ROWS")
    p.add_argument("--kafka-port", type=int, default=19692, help="private broker's port (+1 controller)")
    p.add_argument("--serving-port", type=int, default=19711, help="serving's HTTP port")
    p.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    return p.parse_args(argv)


def applicants(n: int, seed: int = 7) -> pa.Table:
    """`n` new applicants (generator draws, both classes at the data's prior) with application ids."""
    from workbench.applicant_generator import ApplicantGenerator
    from workbench.demo_data import german_credit

    generator = ApplicantGenerator(german_credit())
    rng = np.random.default_rng(seed)
    bad = int(rng.binomial(n, generator.bad_share))
    parts = []
    for label, count in (("good", n - bad), ("bad", bad)):
        codes = generator.copulas[label].draw(generator.columns, count, rng)
        parts.append({c.name: c.decode(codes[:, j]) for j, c in enumerate(generator.columns)})
    columns = {name: list(parts[0][name]) + list(parts[1][name]) for name in parts[0]}
    order = rng.permutation(n)
    table = pa.table({name: pa.array(values).take(pa.array(order)) for name, values in columns.items()})
    ids = pa.array([f"bench-{i:07d}" for i in range(n)])
    return table.add_column(0, "application_id", ids)


class PredictProbe(threading.Thread):
    """One /predict every 50 ms while a batch runs: answered or not, and how long it took."""

    def __init__(self, url: str, key: str, features: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.features = url, key, features
        self.latencies: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"X-API-Key": self.key}, timeout=30) as client:
            while not self.stopping.wait(0.05):
                started = time.perf_counter()
                try:
                    ok = (
                        client.post(f"{self.url}/predict", json={"features": self.features}).status_code
                        == 200
                    )
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started) if ok else None
                self.failures += not ok


def through_service(url: str, ops_key: str, path: Path, media: str, probe: PredictProbe) -> dict[str, Any]:
    headers = {"X-API-Key": ops_key}
    with httpx.Client(base_url=url, headers=headers, timeout=3600) as client:
        started = time.perf_counter()
        with path.open("rb") as body:
            accepted = client.post("/batch-scores", content=body, headers={"Content-Type": media})
        accepted.raise_for_status()
        job = accepted.json()
        uploaded = time.perf_counter()
        status = job
        while status["state"] == "running":
            time.sleep(0.2)
            status = client.get(f"/batch-scores/{job['job_id']}").json()
        if status["state"] != "done":
            raise SystemExit(f"the job failed: {status['reason']}")
        scored = time.perf_counter()
        out = path.with_name("scores.parquet")
        with client.stream("GET", f"/batch-scores/{job['job_id']}/file") as response, out.open("wb") as f:
            for chunk in response.iter_bytes():
                f.write(chunk)
        done = time.perf_counter()
    assert pq.read_metadata(out).num_rows == status["rows"]
    return {
        "rows": status["rows"],
        "upload_and_check_s": uploaded - started,
        "job_s": status["duration_s"],
        "wait_s": scored - uploaded,
        "download_s": done - scored,
        "total_s": done - started,
        "rows_per_s_end_to_end": status["rows"] / (done - started),
        "rows_per_s_job": status["rows_per_s"],
    }


def in_process(uri: str, version: str, path: Path, media: str, chunk_rows: int) -> dict[str, Any]:
    """The serving code in this process, no HTTP: load like serving, read + check, score, write."""
    from services.serving.adapters.mlflow_registry import MlflowRegistry
    from services.serving.domain.batch import chunks, output_batch, output_schema, read_input, score_chunk
    from services.serving.settings import ServingSettings

    model = MlflowRegistry(ServingSettings(mlflow_tracking_uri=uri)).load(version, "bench")
    started = time.perf_counter()
    table = read_input(path, media, model.columns)
    read = time.perf_counter()
    scored = [score_chunk(model, chunk) for chunk in chunks(table, chunk_rows)]
    score_s = time.perf_counter() - read
    schema = output_schema(model, ["application_id"], {"input_sha256": "0" * 64})
    with pq.ParquetWriter(path.with_name("in-process.parquet"), schema) as writer:
        for part in scored:
            writer.write_batch(output_batch(model, part, schema))
    total_s = time.perf_counter() - started
    return {
        "scorer": model.scorer.kind,
        "read_and_check_s": read - started,
        "score_s": score_s,
        "total_s": total_s,
        "rows_per_s_score_only": table.num_rows / score_s,
        "rows_per_s_read_score_write": table.num_rows / total_s,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "benchmark": "batch_scoring",
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "command": "python -m bench.batch_scoring " + shlex.join(sys.argv[1:]),
        "machine": machine(),
        "parameters": vars(args),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-batch-")))
        bootstrap = stack.enter_context(bench_kafka(args.bootstrap, tmp / "kafka", args.kafka_port))
        ensure_topics(bootstrap, platform_topics(3, 1))
        console.print("registering the model, pushing features ...")
        world = prepare(tmp)
        console.print(f"drawing {args.rows} applicants ...")
        started = time.perf_counter()
        table = applicants(args.rows)
        media = PARQUET if args.format == "parquet" else "text/csv"
        path = tmp / f"applicants.{args.format}"
        if args.format == "parquet":
            pq.write_table(table, path)
        else:
            import pyarrow.csv as pv

            pv.write_csv(table, path)
        results["file"] = {"bytes": path.stat().st_size, "generated_s": time.perf_counter() - started}
        url = f"http://127.0.0.1:{args.serving_port}"
        env = env_base(tmp, world["uri"]) | {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SERVING_HTTP_PORT": str(args.serving_port),
            "MLOPS_API_KEYS_FILE": str(world["keys_file"]),
            "MLOPS_FEAST_REPO": str(tmp / "feast"),
            "SERVING_CHAMPION_POLL_S": "0",
            "SERVING_BATCH_MAX_BYTES": str(4 * path.stat().st_size + 1024),
            "SERVING_BATCH_CHUNK_ROWS": str(args.chunk_rows),
        }
        serving = start(stack, [sys.executable, "-m", "services.serving"], env, tmp / "serving.log")
        wait_http(f"{url}/ready", serving, tmp / "serving.log")
        features = {k: v for k, v in table.slice(0, 1).to_pylist()[0].items() if k != "application_id"}
        runs = []
        for run in range(args.runs):
            probe = PredictProbe(url, world["key"], features)
            probe.start()
            outcome = through_service(url, world["ops_key"], path, media, probe)
            probe.stopping.set()
            probe.join()
            outcome |= {
                "predict_answered": len(probe.latencies),
                "predict_failed": probe.failures,
                "predict_p50_ms": 1000 * median(probe.latencies) if probe.latencies else None,
                "predict_max_ms": 1000 * max(probe.latencies) if probe.latencies else None,
            }
            console.print(f"run {run + 1}: {json.dumps(outcome)}")
            runs.append(outcome)
        results["service_runs"] = runs
        results["in_process"] = in_process(world["uri"], world["versions"][0], path, media, args.chunk_rows)
    summary = {
        key: median(r[key] for r in runs) for key in ("rows_per_s_end_to_end", "rows_per_s_job", "total_s")
    }
    summary["in_process_rows_per_s_score_only"] = results["in_process"]["rows_per_s_score_only"]
    summary["end_to_end_over_in_process_score_only"] = (
        summary["rows_per_s_end_to_end"] / summary["in_process_rows_per_s_score_only"]
    )
    results["summary"] = summary
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print_json(json.dumps(summary))


if __name__ == "__main__":
    main()
