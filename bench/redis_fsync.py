"""What `appendfsync always` costs the cluster profile's online store against `everysec`, in one run.

`infra/redis_local.py` runs Redis with `appendfsync always`: `everysec` postpones its write while a
background fsync is still running and answers the client anyway, so a SIGKILL can lose writes it
acknowledged. The price is an fsync per event-loop turn of Redis; the features service writes a batch
as one pipeline (Feast's `online_write_batch`), so about one fsync per batch.

Per round, a fresh `redis-server` per mode (the modes alternate, so a busy machine hits both alike)
takes `--batches` pipelines of `--rows` HSETs shaped like a features row (a timestamp and 20 values).
Reported: the median time of one pipeline per mode and round, and the ratio always/everysec.
Nothing here asserts on timings.

    .venv/bin/python -m bench.redis_fsync [--rounds 3] [--batches 200] [--rows 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from infra.processes import port_open
from tests.support_postgres import free_port

MODES = ("everysec", "always")


def pipeline_ms(mode: str, batches: int, rows: int) -> float:
    """Median ms of one `rows`-HSET pipeline against a fresh server with `appendfsync mode`."""
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        config = Path(home) / "redis.conf"
        lines = [f"port {port}", "bind 127.0.0.1", f'dir "{home}"', "appendonly yes", f"appendfsync {mode}"]
        config.write_text("\n".join([*lines, 'save ""']) + "\n")
        server = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.05)
            client = redis.Redis(port=port)
            values = {"_ts": b"t" * 12} | {f"f{j}": b"v" * 10 for j in range(20)}
            times = []
            for batch in range(batches):
                started = time.perf_counter()
                with client.pipeline(transaction=False) as pipe:
                    for row in range(rows):
                        pipe.hset(f"entity-{batch}-{row}", mapping=values)
                    pipe.execute()
                times.append(time.perf_counter() - started)
            client.close()
        finally:
            server.kill()
            server.wait()
    return statistics.median(times) * 1000


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()
    rounds = []
    for number in range(args.rounds):
        result = {mode: round(pipeline_ms(mode, args.batches, args.rows), 2) for mode in MODES}
        result["ratio"] = round(result["always"] / result["everysec"], 2)
        print(json.dumps({"round": number, "pipeline_ms": result}), flush=True)
        rounds.append(result)
    print(json.dumps({"median": {k: statistics.median(r[k] for r in rounds) for k in (*MODES, "ratio")}}))


if __name__ == "__main__":
    main()
