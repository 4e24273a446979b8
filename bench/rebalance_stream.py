"""The stream behind bench/rebalance_time.py: demo loan applications sent to records.raw at a fixed rate,
pipelined (acks=all, idempotent, as the services' producers), until SIGTERM or `--seconds`. A process
of its own, so that its work does not delay the bench's polls; on exit it prints one JSON line with
the records sent and acknowledged.

    python -m bench.rebalance_stream --bootstrap HOST:PORT[,..] --state STATE_DIR --rate 300

`mlops produce` is not used: it awaits each record's acknowledgement before sending the next (one
acks=all round trip per record), which on the cluster profile tops out near 70-80 records/s
(docs/benchmarks.md, "The cluster profile"), below the rates this bench asks for. Nor is each record
generated as it is sent: the demo generator costs about 1 ms of CPU per application (Faker's PII), too
much for 300/s on a shared 2-core machine. `--pool` applications are generated before the first send
and cycled, each pass with new application ids (`<id>-<pass>`): new entities, so ingest's duplicate
checks (per entity) see fresh records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from aiokafka import AIOKafkaProducer

from contracts.topics import RECORDS_RAW
from infra.bus_access import kafka_options, remember_stack
from infra.settings import REPO_ROOT

if TYPE_CHECKING:
    from bench.platform_stack import Stack

# Acknowledgements are awaited in groups of this many sends: a failed send ends the stream loudly.
ACK_EVERY = 500


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.rebalance_stream", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--bootstrap", required=True, help="the stack's Kafka nodes")
    p.add_argument("--state", type=Path, required=True, help="the stack's state folder (its super user)")
    p.add_argument("--rate", type=float, default=300.0, help="records/s")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until SIGTERM)")
    p.add_argument("--pool", type=int, default=6000, help="distinct applications generated up front")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--prefix", default=f"rebal{int(time.time()) % 100_000}", help="application id prefix")
    return p.parse_args(argv)


async def stream(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, float | int]:
    from workbench.demo_data import ApplicationStream

    remember_stack(args.state, args.bootstrap)
    pool = [app.record for app in ApplicationStream(seed=args.seed, id_prefix=args.prefix).take(args.pool)]
    producer = AIOKafkaProducer(
        **kafka_options(args.bootstrap), acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    started, sent, acked = time.monotonic(), 0, 0
    pending: list[asyncio.Future[object]] = []
    try:
        while not stop.is_set():
            if args.seconds and time.monotonic() - started >= args.seconds:
                break
            # Pace: the i-th record goes at started + i / rate, a few at a time.
            wait = started + sent / args.rate - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            base = pool[sent % len(pool)]
            record = base | {"application_id": f"{base['application_id']}-{sent // len(pool)}"}
            key = record["application_id"].encode()
            pending.append(await producer.send(RECORDS_RAW, msgspec.json.encode(record), key))
            sent += 1
            if len(pending) >= ACK_EVERY:
                await asyncio.gather(*pending)
                acked += len(pending)
                pending.clear()
        await asyncio.gather(*pending)
        acked += len(pending)
    finally:
        await producer.stop()
    elapsed = time.monotonic() - started
    return {"sent": sent, "acked": acked, "seconds": round(elapsed, 1), "rate": round(sent / elapsed, 1)}


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await stream(args, stop)


def start_stream(args: argparse.Namespace, stack: Stack, logs: Path) -> subprocess.Popen[str]:
    """This module as a process of its own, streaming into `stack` at `args.rate`."""
    command = [sys.executable, "-m", "bench.rebalance_stream", "--bootstrap", stack.bootstrap,
               "--state", str(stack.state), "--rate", str(args.rate)]  # fmt: skip
    with open(logs / "rebalance-stream.log", "ab") as err:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=stack.env(), stdout=subprocess.PIPE, stderr=err, text=True
        )


def stop_stream(stream: subprocess.Popen[str]) -> dict[str, Any]:
    """SIGTERM the stream (it flushes what it sent) and return its summary line."""
    if stream.poll() is None:
        stream.send_signal(signal.SIGTERM)
    try:
        out, _ = stream.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stream.kill()
        out, _ = stream.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"exit_code": stream.returncode}


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(asyncio.run(run(parse_args(argv)))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
