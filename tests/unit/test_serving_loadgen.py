"""The open-loop load generator (bench/serving_loadgen.py) against a real local HTTP server: the
warm-up is reported apart from what is measured, and the seconds that hold a tail are named."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import platform_serving, platform_throughput
from bench.runqueue import RunQueueSampler, waited_ns
from bench.serving_loadgen import parse_args, run, spread, worst_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(predict: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A real HTTP server on a free port answering POST /predict with `predict`; its URL."""
    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        await runner.cleanup()


async def test_a_slow_start_is_reported_as_the_warm_up_not_as_the_tail() -> None:
    started = time.perf_counter()

    async def predict(request: web.Request) -> web.Response:
        await request.read()
        if time.perf_counter() - started < 0.4:  # slow while the client warms up
            await asyncio.sleep(0.08)
        return web.json_response({"ok": True})

    async with serving(predict) as url:
        started = time.perf_counter()
        result = await run(url, [b"{}"], 100, 1.0, {}, warmup=0.5)
    assert result["sent"] == 100 and result["ok"] == 100 and result["statuses"] == {"200": 100}
    assert result["warmup"]["sent"] == 50 and result["warmup"]["max_ms"] >= 80
    assert result["max_ms"] < 80  # none of the slow answers is among the measured ones
    assert result["warmup"]["over_25_ms"] >= 30 and result["over_25_ms"] < 30


def test_the_worst_seconds_are_those_with_the_most_slow_requests() -> None:
    by_second = {0: [0.003] * 200, 4: [0.003] * 190 + [0.1] * 10, 7: [0.003] * 197 + [0.03, 0.2, 0.04]}
    assert worst_seconds(by_second) == [
        {"second": 4, "over_25_ms": 10, "max_ms": 100.0},
        {"second": 7, "over_25_ms": 3, "max_ms": 200.0},
    ]
    assert worst_seconds({0: [0.001]}) == []


@pytest.mark.parametrize(
    "argv",
    [["--warmup", "-1"], ["--warmup", "nan"], ["--rate", "0"], ["--duration", "-5"], ["--rate", "fast"]],
)
def test_the_load_generator_refuses_nonsense(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["http://127.0.0.1:1/predict", "bodies.json", *argv])
    assert exited.value.code == 2 and argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("nice", ["-1", "20", "high"])
def test_the_platform_bench_refuses_a_niceness_outside_0_to_19(
    nice: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        platform_throughput.parse_args(["--stream-nice", nice])
    assert exited.value.code == 2 and "--stream-nice" in capsys.readouterr().err
    assert platform_throughput.parse_args(["--stream-nice", "0"]).stream_nice == 0


def test_run_queue_wait_is_read_per_thread_and_a_gone_process_is_none() -> None:
    mine = waited_ns(os.getpid())
    assert mine is not None and mine >= 0
    assert waited_ns(2**22 + 1) is None  # above any pid Linux gives


def test_run_queue_wait_per_second_is_the_delta_placed_in_the_later_samples_second() -> None:
    sampler = RunQueueSampler({"server": 1, "loadgen": 2})
    ms = 1_000_000
    sampler.samples = [
        (9.95, {"server": 0, "loadgen": 0}),  # before the origin: only the base of the next delta
        (10.05, {"server": 4 * ms, "loadgen": 0}),
        (10.55, {"server": 10 * ms, "loadgen": None}),  # gone: no delta either side
        (11.2, {"server": 7 * ms, "loadgen": 5 * ms}),  # a thread ended: below zero counts as zero
        (11.4, {"server": 57 * ms, "loadgen": 6 * ms}),
    ]
    assert sampler.per_second(origin=10.0) == {"server": {0: 10.0, 1: 50.0}, "loadgen": {0: 0.0, 1: 1.0}}
    assert spread({0: 10.0, 1: 50.0}, 4) == {"median": 5.0, "max": 50.0}


async def test_a_sampler_with_nothing_to_watch_starts_no_task() -> None:
    idle, watching = RunQueueSampler({}), RunQueueSampler({"self": os.getpid()}, every_s=0.01)
    idle.start()
    watching.start()
    await asyncio.sleep(0.05)
    assert idle._task is None and watching._task is not None
    await idle.stop()
    await watching.stop()
    assert idle.samples == [(idle.samples[0][0], {})]  # only the sample `stop` takes
    assert len(watching.samples) >= 2


async def test_a_watched_run_gives_each_second_the_servers_and_its_own_wait() -> None:
    async def predict(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    async with serving(predict) as url:  # the server is this process too: both names watch it
        result = await run(url, [b"{}"], 200, 2.0, {}, watch_pid=os.getpid())
    waits = result["runqueue_ms_per_s"]
    assert set(waits) == {"server", "loadgen"}
    threads = len(os.listdir("/proc/self/task"))  # each waits at most the whole second
    assert all(0 <= w["median"] <= w["max"] <= 1000 * threads for w in waits.values())
    assert all("server_runqueue_ms" in s and "loadgen_runqueue_ms" in s for s in result["worst_seconds"])
    plain = await run(f"http://127.0.0.1:{free_port()}/predict", [b"{}"], 50, 0.2, {})
    assert "runqueue_ms_per_s" not in plain and plain["ok"] == 0  # nothing listens: errors, not a crash


@pytest.mark.parametrize("pid", ["0", "-3", "serving"])
def test_the_load_generator_refuses_a_pid_that_is_not_one(
    pid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["http://127.0.0.1:1/predict", "bodies.json", "--watch-pid", pid])
    assert exited.value.code == 2 and "--watch-pid" in capsys.readouterr().err


def test_serving_s_slow_requests_inside_the_app_are_read_from_its_own_histograms() -> None:
    registry = CollectorRegistry()
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1)
    http = Histogram("mlops_http_request_seconds", "", ["service", "route", "status"], registry=registry,
                     buckets=buckets)  # fmt: skip
    handler = Histogram("serving_prediction_seconds", "", ["source"], registry=registry, buckets=buckets)
    for seconds in (0.002, 0.02, 0.03, 0.2):
        http.labels("serving", "/predict", "200").observe(seconds)
    http.labels("serving", "/predict", "422").observe(0.5)  # another status: not a served prediction
    http.labels("serving", "/model", "200").observe(0.5)
    handler.labels("entity").observe(0.04)
    handler.labels("features").observe(0.04)
    before = platform_serving.parse_inside(generate_latest(registry).decode())
    assert before == {"app": (4.0, 2.0), "handler": (1.0, 1.0)}
    handler.labels("entity").observe(0.001)
    after = platform_serving.parse_inside(generate_latest(registry).decode())
    assert platform_serving.inside_delta(before, after) == {
        "app": {"requests": 0, "over_25_ms": 0},
        "handler": {"requests": 1, "over_25_ms": 0},
    }
    assert platform_serving.inside_delta(None, after) is None  # /metrics did not answer
