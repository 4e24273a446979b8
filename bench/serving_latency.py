"""Serving latency and throughput, against `mlflow models serve` of the same model, in the same run.

What it does (every server and load generator is its own process):
1. a private Kafka (LocalKafka on 19592/19593) unless `--bootstrap`; a temp MLflow (SQLite) with two
   versions of the reference model (German credit, StandardScaler + OneHotEncoder + LogisticRegression,
   as training registers it); a temp Feast repo with the 1000 applications pushed online;
2. starts `python -m services.serving` and `mlflow models serve -m models:/credit-risk@champion
   --env-manager local` (1 worker each) and checks that both give the same score for the same row;
3. max rate: `wrk` (closed loop, `--connections`) on serving by entity key (online feature read
   included), serving by feature values, and the baseline fed the same feature values
   (`dataframe_split`); `--runs` interleaved runs, medians reported;
4. fixed rate: bench.serving_loadgen (open loop, latency from when each request was due) at `--rate`
   on serving by entity key, and on the baseline;
5. hot swap: `--swaps` times, move the alias and publish ModelPromoted, then poll /predict until the
   new version answers (model.promoted published -> new version answering), with the open-loop
   generator running at `--rate` meanwhile (errors and p99 while swapping).

`python -m bench.serving_latency [--runs 3] [--duration 15] [--rate 500] [--fixed-duration 20]
[--connections 8] [--swaps 3] [--bootstrap HOST:PORT]`. Results: bench/results/serving_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.common import bench_kafka
from infra.settings import REPO_ROOT
from infra.topics import ensure_topics, platform_topics

BENCH_PORT, BENCH_CONTROLLER_PORT = 19592, 19593
SERVING_PORT, BASELINE_PORT = 19611, 19612
RESULTS = Path(__file__).resolve().parent / "results" / "serving_latency.json"
MODEL = "credit-risk"
console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serving_latency", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="max-rate runs per target (median reported)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds per max-rate run")
    p.add_argument("--rate", type=float, default=500.0, help="fixed rate, requests/s")
    p.add_argument("--fixed-duration", type=float, default=20.0, help="seconds per fixed-rate run")
    p.add_argument("--fixed-runs", type=int, default=2, help="fixed-rate runs on serving")
    p.add_argument("--connections", type=int, default=8, help="wrk connections at max rate")
    p.add_argument("--swaps", type=int, default=3, help="hot swaps timed")
    p.add_argument("--bootstrap", help="use this Kafka instead of a private one")
    return p.parse_args(argv)


def env_base(tmp: Path, uri: str) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
        "MLOPS_STATE_DIR": str(tmp / "state"),
        "MLOPS_LOG_LEVEL": "WARNING",
        # `mlflow models serve` runs `uvicorn` from PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def prepare(tmp: Path) -> dict[str, Any]:
    from servicekit.auth import Role, write_dev_keys
    from workbench.serving_devdata import push_feature_rows, register_reference_model

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    first = register_reference_model(uri, tmp / "artifacts", MODEL)
    second = register_reference_model(uri, tmp / "artifacts", MODEL, c=0.5, promote=False)
    rows = push_feature_rows(tmp / "feast")
    _, hashed = write_dev_keys(tmp / "secrets", [("bench", Role.CLIENT), ("bench-ops", Role.OPS)])
    plain = json.loads((tmp / "secrets" / "api-keys.json").read_text())
    return {
        "uri": uri,
        "versions": (first, second),
        "rows": rows,
        "keys_file": hashed,
        "key": plain["bench"]["key"],
        "ops_key": plain["bench-ops"]["key"],
    }


def start(stack: ExitStack, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    stack.callback(_stop, proc)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            console.print(log.read_text()[-3000:])
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout_s} s")


def outbox_drained(key: str, timeout_s: float = 120) -> dict[str, float]:
    """Wait until serving has published its queued events (they compete for CPU otherwise); returns
    the event counters."""
    deadline = time.perf_counter() + timeout_s
    while True:
        text = httpx.get(f"http://127.0.0.1:{SERVING_PORT}/metrics", headers={"X-API-Key": key}).text
        values = {
            m[0] + m[1]: float(m[2])
            for m in re.findall(r"^(serving_event\w+)(\{[^}]*\})? (\S+)$", text, re.M)
        }
        if values.get("serving_event_queue_depth", 0) == 0 or time.perf_counter() > deadline:
            return values
        time.sleep(0.5)


def lua_script(path: Path, bodies: list[Any], headers: dict[str, str]) -> Path:
    quoted = ",\n".join("[==[" + json.dumps(b) + "]==]" for b in bodies)
    heads = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(
        f'wrk.method = "POST"\n{heads}\nbodies = {{\n{quoted}\n}}\ni = 0\n'
        "request = function()\n  i = i + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])\nend\n"
    )
    return path


def wrk(url: str, script: Path, duration: float, connections: int) -> dict[str, Any]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def loadgen(url: str, bodies: Path, rate: float, duration: float, key: str | None) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "bench.serving_loadgen",
        url,
        str(bodies),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
    ]
    if key:
        command += ["--header", f"X-API-Key:{key}"]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    return dict(json.loads(out))


def bodies_for(rows: Any, columns: list[str]) -> dict[str, list[Any]]:
    records = rows.to_dict("records")
    features = [{c: r[c] for c in columns} for r in records]
    return {
        "serving_entity": [{"entity_id": r["application_id"]} for r in records],
        "serving_features": [{"features": f} for f in features],
        "baseline": [
            {"dataframe_split": {"columns": columns, "data": [[f[c] for c in columns]]}} for f in features
        ],
    }


def same_scores(bodies: dict[str, list[Any]], key: str, n: int = 20) -> float:
    worst = 0.0
    for i in range(n):
        ours = httpx.post(
            f"http://127.0.0.1:{SERVING_PORT}/predict",
            json=bodies["serving_entity"][i],
            headers={"X-API-Key": key},
        ).json()["score"]
        theirs = httpx.post(
            f"http://127.0.0.1:{BASELINE_PORT}/invocations", json=bodies["baseline"][i]
        ).json()
        worst = max(worst, abs(ours - theirs["predictions"][0][1]))
    return worst


async def promote_and_time(bootstrap: str, uri: str, key: str, target: str) -> float:
    import mlflow

    from contracts.events import GateEvidence, ModelPromoted, ModelPromotedPayload
    from servicekit.broker import EventPublisher, make_broker
    from services.serving.settings import ServingSettings

    client = mlflow.MlflowClient(uri)
    client.set_registered_model_alias(MODEL, "champion", target)
    broker = make_broker(ServingSettings(kafka_bootstrap_servers=bootstrap))
    payload = ModelPromotedPayload(
        model_name=MODEL,
        model_version=target,
        run_id="bench",
        evidence=GateEvidence(checks=[], candidate_metrics={}),
    )
    async with broker, httpx.AsyncClient(headers={"X-API-Key": key}) as http:
        await broker.start()
        await EventPublisher(broker, "bench").publish(ModelPromoted.create(payload, "bench"))
        published = time.perf_counter()
        while True:
            reply = await http.post(
                f"http://127.0.0.1:{SERVING_PORT}/predict", json={"entity_id": "app-00000"}
            )
            if reply.json()["model_version"] == target:
                return time.perf_counter() - published
            await asyncio.sleep(0.005)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = machine()
    results: dict[str, Any] = {
        "benchmark": "serving_latency",
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "command": "python -m bench.serving_latency " + shlex.join(sys.argv[1:]),
        "machine": info,
        "parameters": vars(args),
    }
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-serving-")))
        bootstrap = stack.enter_context(bench_kafka(args.bootstrap, tmp / "kafka", BENCH_PORT))
        ensure_topics(bootstrap, platform_topics(3, 1))
        console.print("registering models and pushing features ...")
        world = prepare(tmp)
        env = env_base(tmp, world["uri"])
        serving = start(
            stack,
            [sys.executable, "-m", "services.serving"],
            env
            | {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "SERVING_HTTP_PORT": str(SERVING_PORT),
                "MLOPS_API_KEYS_FILE": str(world["keys_file"]),
                "MLOPS_FEAST_REPO": str(tmp / "feast"),
                "SERVING_CHAMPION_POLL_S": "0",
            },
            tmp / "serving.log",
        )
        baseline = start(
            stack,
            [
                str(Path(sys.executable).parent / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{MODEL}@champion",
                "--env-manager",
                "local",
                "-p",
                str(BASELINE_PORT),
                "-h",
                "127.0.0.1",
            ],
            env,
            tmp / "baseline.log",
        )
        results["serving_ready_s"] = wait_http(
            f"http://127.0.0.1:{SERVING_PORT}/ready", serving, tmp / "serving.log"
        )
        results["baseline_ready_s"] = wait_http(
            f"http://127.0.0.1:{BASELINE_PORT}/ping", baseline, tmp / "baseline.log"
        )
        key = world["key"]
        model = httpx.get(f"http://127.0.0.1:{SERVING_PORT}/model", headers={"X-API-Key": key}).json()[
            "champion"
        ]
        bodies = bodies_for(world["rows"], model["features"])
        results["scorer"] = model["scorer"]
        results["max_abs_score_difference_vs_baseline"] = same_scores(bodies, key)
        scripts = {
            name: lua_script(
                tmp / f"{name}.lua",
                b,
                {"Content-Type": "application/json"} | ({"X-API-Key": key} if name != "baseline" else {}),
            )
            for name, b in bodies.items()
        }
        urls = {
            "serving_entity": f"http://127.0.0.1:{SERVING_PORT}/predict",
            "serving_features": f"http://127.0.0.1:{SERVING_PORT}/predict",
            "baseline": f"http://127.0.0.1:{BASELINE_PORT}/invocations",
        }
        for name in urls:  # warm-up, not counted
            wrk(urls[name], scripts[name], 3, args.connections)
        max_rate: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        for run in range(args.runs):
            for name in urls:
                outbox_drained(world["ops_key"])
                max_rate[name].append(wrk(urls[name], scripts[name], args.duration, args.connections))
                console.print(f"max rate run {run + 1} {name}: {max_rate[name][-1]}")
        results["max_rate"] = {
            name: {
                "runs": runs,
                "median": {k: median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")},
            }
            for name, runs in max_rate.items()
        }
        files = {}
        for name, b in bodies.items():
            files[name] = tmp / f"{name}.json"
            files[name].write_text(json.dumps(b))
        fixed: dict[str, list[dict[str, Any]]] = {"serving_entity": [], "baseline": []}
        results["events_after_max_rate"] = outbox_drained(world["ops_key"])
        for run in range(args.fixed_runs):
            fixed["serving_entity"].append(
                finish(
                    loadgen(
                        urls["serving_entity"], files["serving_entity"], args.rate, args.fixed_duration, key
                    )
                )
            )
            console.print(
                f"fixed {args.rate:.0f}/s run {run + 1} serving_entity: {fixed['serving_entity'][-1]}"
            )
        fixed["baseline"].append(
            # 5 s only: the baseline cannot keep up, so its backlog (and the run) grows without end
            finish(loadgen(urls["baseline"], files["baseline"], args.rate, min(args.fixed_duration, 5), None))
        )
        console.print(f"fixed {args.rate:.0f}/s baseline: {fixed['baseline'][-1]}")
        results["fixed_rate"] = {
            name: {
                "runs": runs,
                "median": {k: median(r[k] for r in runs) for k in ("achieved_rps", "p50_ms", "p99_ms")},
            }
            for name, runs in fixed.items()
        }
        swaps: list[dict[str, Any]] = []
        versions = world["versions"]
        for i in range(args.swaps):
            target = versions[(i + 1) % 2]
            background = loadgen(urls["serving_entity"], files["serving_entity"], args.rate, 20, key)
            time.sleep(3)
            seconds = asyncio.run(promote_and_time(bootstrap, world["uri"], key, target))
            load = httpx.get(f"http://127.0.0.1:{SERVING_PORT}/model", headers={"X-API-Key": key}).json()
            swaps.append(
                {
                    "to_version": target,
                    "promoted_to_answering_s": seconds,
                    "model_load_s": load["champion"]["load_seconds"],
                    "traffic": finish(background),
                }
            )
            console.print(f"swap {i + 1}: {swaps[-1]}")
        results["swaps"] = swaps
        results["events_at_end"] = outbox_drained(world["ops_key"])
        results["swap_median_s"] = median(s["promoted_to_answering_s"] for s in swaps) if swaps else None
    info["loadavg_at_end"] = os.getloadavg()
    mr = results["max_rate"]
    results["throughput_ratio_entity_vs_baseline"] = (
        mr["serving_entity"]["median"]["rps"] / mr["baseline"]["median"]["rps"]
    )
    results["throughput_ratio_features_vs_baseline"] = (
        mr["serving_features"]["median"]["rps"] / mr["baseline"]["median"]["rps"]
    )
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")


def report(results: dict[str, Any]) -> None:
    table = Table(title="Serving vs mlflow models serve (medians)")
    for column in (
        "target",
        "max rps",
        "max p50 ms",
        "max p99 ms",
        "fixed rps",
        "fixed p50 ms",
        "fixed p99 ms",
    ):
        table.add_column(column, justify="right")
    for name, data in results["max_rate"].items():
        fixed = results["fixed_rate"].get(name, {}).get("median", {})
        m = data["median"]
        table.add_row(
            name,
            f"{m['rps']:.0f}",
            f"{m['p50_ms']:.2f}",
            f"{m['p99_ms']:.2f}",
            *(f"{fixed[k]:.2f}" if k in fixed else "-" for k in ("achieved_rps", "p50_ms", "p99_ms")),
        )
    console.print(table)
    console.print(
        f"throughput ratio (entity) {results['throughput_ratio_entity_vs_baseline']:.2f}x, "
        f"(features) {results['throughput_ratio_features_vs_baseline']:.2f}x; "
        f"swap median {results['swap_median_s']} s"
    )


if __name__ == "__main__":
    main()
