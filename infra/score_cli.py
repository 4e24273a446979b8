"""`mlops score ...`: batch scoring through the serving service's API (POST /batch-scores, ops key),
with the scorer /predict uses, so a file scored here and the same rows sent to /predict agree.

    mlops score FILE [--out OUT.parquet] [--version N] [--url URL] [--api-key KEY]
    mlops score --start ISO --end ISO [--out OUT.parquet] [--version N]

FILE is Parquet (.parquet, .pq) or CSV (.csv) with the model's feature columns (and application_id,
kept in the output). The file is uploaded as is, the job polled, its scores downloaded; one line
says the rows, rows/s, model version and the input's sha256. Exit codes: 0 scored; 2 bad input (flags,
a missing or unsupported file, or input the service refused: missing columns, wrong types, no data
in the range, unknown version), with the reason on one line; 1 the service failed or is unreachable,
or the job failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from infra.monitoring import PrometheusError, ops_key
from infra.settings import InfraSettings
from infra.supervisor import service_port
from servicekit.cli_args import positive_int

DONE, FAILED, BAD_INPUT = 0, 1, 2
MEDIA = {
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".csv": "text/csv",
}


class _Stop(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a time zone, e.g. {text}Z or {text}+00:00")
    return value


def add_parser(sub: Any) -> None:
    score = sub.add_parser("score", help="score a Parquet/CSV file or a time range of the offline store")
    score.add_argument("file", nargs="?", type=Path, help="Parquet (.parquet) or CSV (.csv) of applications")
    score.add_argument("--start", type=aware_time, help="offline store: first event time (ISO, with zone)")
    score.add_argument("--end", type=aware_time, help="offline store: end of the range, excluded")
    score.add_argument(
        "--out", type=Path, help="scores file (default: <file>.scores.parquet or ./scores-<job>.parquet)"
    )
    score.add_argument("--version", type=positive_int, help="model version (default: the champion)")
    score.add_argument("--url", help="serving service (default: the local stack's)")
    score.add_argument("--api-key", help="an ops key (default: the local stack's development key)")
    score.add_argument("--timeout", type=positive_int, default=3600, help="seconds to wait for the job")


def cmd_score(settings: InfraSettings, args: argparse.Namespace) -> int:
    try:
        summary = _score(settings, args)
    except _Stop as stop:
        print(f"error: {stop}", file=sys.stderr)
        return stop.code
    print(summary)
    return DONE


def _score(settings: InfraSettings, args: argparse.Namespace) -> str:
    ranged = args.start is not None or args.end is not None
    if ranged == (args.file is not None):
        raise _Stop(BAD_INPUT, "give a FILE, or --start and --end (not both)")
    if ranged and (args.start is None or args.end is None or args.end <= args.start):
        raise _Stop(BAD_INPUT, "a time range needs --start and --end, end after start")
    url = args.url or f"http://127.0.0.1:{service_port(settings, 'serving')}"
    try:
        key = args.api_key or ops_key(settings.secrets_dir / "api-keys.json")
    except (OSError, ValueError, PrometheusError):
        raise _Stop(BAD_INPUT, "no --api-key and no development ops key (run `mlops up` first)") from None
    params = {"version": str(args.version)} if args.version else {}
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=600) as client:
        if ranged:
            window = {"start": args.start.isoformat(), "end": args.end.isoformat()}
            job = _answer(_call(client, "POST", "/batch-scores", json=window, params=params), 202)
        else:
            job = _upload(client, args.file, params)
        status = _wait(client, job["job_id"], args.timeout)
        out = args.out or (
            args.file.with_suffix(".scores.parquet") if args.file else Path(f"scores-{job['job_id']}.parquet")
        )
        _download(client, job["job_id"], out)
    return (
        f"scored {status['rows']} rows at {status['rows_per_s']:.0f} rows/s with {status['model_name']} "
        f"version {status['model_version']}; input sha256 {status['input_sha256']}; scores in {out}"
    )


def _upload(client: httpx.Client, path: Path, params: dict[str, str]) -> dict[str, Any]:
    media = MEDIA.get(path.suffix.lower())
    if media is None:
        raise _Stop(BAD_INPUT, f"{path}: not a .parquet or .csv file")
    try:
        with path.open("rb") as body:
            response = _call(
                client, "POST", "/batch-scores", content=body, params=params, headers={"Content-Type": media}
            )
    except OSError as exc:
        raise _Stop(BAD_INPUT, f"cannot read {path}: {exc.strerror or exc}") from None
    return _answer(response, 202)


def _wait(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        status = _answer(_call(client, "GET", f"/batch-scores/{job_id}"), 200)
        if status["state"] == "done":
            return status
        if status["state"] == "failed":
            raise _Stop(FAILED, f"the job failed: {status['reason']}")
        if time.monotonic() > deadline:
            raise _Stop(FAILED, f"job {job_id} still running after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _download(client: httpx.Client, job_id: str, out: Path) -> None:
    partial = out.with_name(f".{out.name}.partial")
    with client.stream("GET", f"/batch-scores/{job_id}/file") as response:
        if response.status_code != 200:
            response.read()
            _answer(response, 200)
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    partial.replace(out)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise _Stop(
            FAILED, f"the serving service at {client.base_url} did not answer ({type(exc).__name__})"
        ) from None


def _answer(response: httpx.Response, expected: int) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:200], "code": "unreadable"}
    if response.status_code == expected:
        return dict(answer)
    code = BAD_INPUT if 400 <= response.status_code < 500 else FAILED
    raise _Stop(code, f"{answer.get('detail')} ({answer.get('code')}, HTTP {response.status_code})")
