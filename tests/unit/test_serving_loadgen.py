"""The open-loop load generator (bench/serving_loadgen.py) against a real local HTTP server: the
warm-up is reported apart from what is measured, and the seconds that hold a tail are named."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp import web

from bench import platform_throughput
from bench.serving_loadgen import parse_args, run, worst_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_slow_start_is_reported_as_the_warm_up_not_as_the_tail() -> None:
    started = time.perf_counter()

    async def predict(request: web.Request) -> web.Response:
        await request.read()
        if time.perf_counter() - started < 0.4:  # slow while the client warms up
            await asyncio.sleep(0.08)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/predict", predict)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        started = time.perf_counter()
        result = await run(f"http://127.0.0.1:{port}/predict", [b"{}"], 100, 1.0, {}, warmup=0.5)
    finally:
        await runner.cleanup()
    assert result["sent"] == 100 and result["ok"] == 100 and result["statuses"] == {"200": 100}
    assert result["warmup"]["sent"] == 50 and result["warmup"]["max_ms"] >= 80
    assert result["max_ms"] < 80  # none of the slow answers is among the measured ones


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
