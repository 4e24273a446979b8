"""`mlops`: run the platform locally.

mlops up [--no-services] [--services a,b]   start Kafka (unless KAFKA_BOOTSTRAP_SERVERS) and services
         [--with-prometheus]                and a Prometheus server scraping them (127.0.0.1:9090)
         [--with-label-studio]              and a Label Studio server (127.0.0.1:8200, docs/annotation.md)
                                            with the annotation service (127.0.0.1:8108)
         [--profile cluster]                three Kafka nodes (9092, 9102, 9112), replication 3
mlops down                                  stop exactly what `up` started
mlops status [--json]                       each component, its URL, health and memory
mlops topics                                create/grow the platform's topics on the cluster
mlops demo [--stop] [--with-label-studio]   up + the whole loop (ingest, train, serve, drift, retrain,
                                            audit, explain) with its figures and plot; with Label
                                            Studio, an analyst's annotation round trip at the end
mlops reports [--report ID] [--ttl S]       a signed link to paste into a browser: the drift reports'
                                            index page, or one report's page
mlops model rollback [--to N] --reason TEXT  move the champion back, as an audited event
mlops model canary --version N --share S --reason TEXT | --end --reason TEXT
mlops replay SERVICE --group NAME (--from-offset N | --from-time ISO8601) [--topic T] [--state-dir DIR]
             [--publish] [--compare]     rebuild features, drift or audit state from the log
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from infra import bus_access
from infra.kafka_local import KafkaInfraError
from infra.label_studio import LabelStudioError
from infra.lifecycle import cmd_down, cmd_up, create_topics
from infra.model_cli import add_parser as add_model_parser
from infra.model_cli import cmd_model
from infra.monitoring import PrometheusError, ops_key
from infra.replay_cli import add_parser as add_replay_parser
from infra.replay_cli import cmd_replay
from infra.report_links import cmd_reports, report_id
from infra.score_cli import add_parser as add_score_parser
from infra.score_cli import cmd_score
from infra.settings import REPO_ROOT, InfraSettings, stack_settings
from infra.status import cmd_status
from infra.stores import StoreError, stores_environment
from infra.supervisor import (
    service_port,
)
from servicekit.cli_args import PROG_ENV, positive_float, positive_int

console = Console(stderr=True)
STARTS_AND_STOPS = ("up", "down", "status", "topics")  # commands that never talk to a store
PASSTHROUGH = {
    "produce": "workbench.demo_producer",
    "audit": "services.audit.cli",
    "train": "services.training.cli",
}


def cmd_topics(settings: InfraSettings, args: argparse.Namespace) -> int:
    created = create_topics(settings)
    console.print(f"created: {created}" if created else "all topics present")
    return 0


def cmd_demo(settings: InfraSettings, args: argparse.Namespace) -> int:
    from infra.demo import run_demo

    code = cmd_up(settings, args)
    if code != 0:
        return code
    try:
        return run_demo(settings, console)
    finally:
        if args.stop:
            cmd_down(settings, args)


def cmd_watch(settings: InfraSettings, args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from infra.watch import watch

    quality = drift_quality_source(settings)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a person stops watching
        asyncio.run(watch(settings.bootstrap_servers, _print_line, args.max_events, args.timeout, quality))
    return 0


def drift_quality_source(settings: InfraSettings) -> Callable[[], Awaitable[list[dict[str, Any]] | None]]:
    """The drift service's online quality per version and its performance estimates (marked
    `"kind": "estimate"`), read with the development ops key; None while the service or the key is
    not there (watch then shows events only)."""
    import httpx

    url = f"http://127.0.0.1:{service_port(settings, 'drift')}/detectors"

    async def read() -> list[dict[str, Any]] | None:
        try:
            key = ops_key(settings.secrets_dir / "api-keys.json")
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(url, headers={"X-API-Key": key})
            body = response.json()
            quality: list[dict[str, Any]] = body.get("online_quality", [])
            estimates = [{**e, "kind": "estimate"} for e in body.get("performance_estimates", [])]
            return [*quality, *estimates] if response.status_code == 200 else None
        except (OSError, ValueError, httpx.HTTPError, PrometheusError):
            return None

    return read


def _print_line(line: str) -> None:
    print(line, flush=True)


def passthrough(module: str) -> Callable[[InfraSettings, argparse.Namespace], int]:
    """A command that runs a service's own tool with the stack's environment (services are never
    imported here: they stay separate programs)."""

    def run(settings: InfraSettings, args: argparse.Namespace) -> int:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "MLOPS_STATE_DIR": str(settings.state_dir),
            PROG_ENV: f"mlops {args.command}",  # their usage and errors name what was typed
        }
        command = [sys.executable, "-m", module, *args.args]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops", description="Run the event-driven MLOps platform locally.")
    parser.add_argument("--version", action="version", version=f"mlops {version('mlops-platform')}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka and every service, return when all are healthy")
    up.add_argument("--no-services", action="store_true", help="start only Kafka and its topics")
    up.add_argument("--services", help="comma-separated subset of services to start")
    up.add_argument(
        "--with-prometheus",
        action="store_true",
        help="also run Prometheus (Debian package `prometheus`) on loopback, scraping the services",
    )
    up.add_argument("--with-label-studio", action="store_true", help="also run Label Studio on loopback")
    up.add_argument(
        "--profile", choices=("local", "cluster"), help="cluster: three Kafka nodes, replication 3"
    )
    sub.add_parser("down", help="stop what `mlops up` started")
    status = sub.add_parser("status", help="list components with URL, health and memory")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("topics", help="create the platform's topics on the cluster")
    watch = sub.add_parser("watch", help="print drift and model events live, one line each")
    watch.add_argument("--max-events", type=positive_int, help="stop after this many events")
    watch.add_argument("--timeout", type=positive_float, help="stop after this many seconds")
    reports = sub.add_parser("reports", help="print a signed link to the drift reports for a browser")
    reports.add_argument("--report", type=report_id, help="that report's page instead of the index")
    reports.add_argument("--ttl", type=positive_int, help="seconds the link opens (30 to 86400; default 900)")
    demo = sub.add_parser("demo", help="the main job: the whole loop on the local stack, with its figures")
    demo.add_argument("--stop", action="store_true", help="stop the stack when the demo ends (else it stays)")
    demo.add_argument(
        "--with-label-studio",
        action="store_true",
        help="also run Label Studio and the annotation service, and end with an analyst's round trip",
    )
    demo.add_argument("--profile", choices=("local", "cluster"), help="the stack's layout (see `up`)")
    demo.add_argument("--no-services", action="store_true", help=argparse.SUPPRESS)
    demo.add_argument("--services", help=argparse.SUPPRESS)
    add_model_parser(sub)
    add_score_parser(sub)
    add_replay_parser(sub)
    # Their own arguments are parsed by the tools they run (parse_known_args hands them over as is).
    sub.add_parser("produce", help="stream the demo loan applications (mlops produce --help)", add_help=False)
    sub.add_parser("audit", help="verify, summary, lineage or erase on the audit database", add_help=False)
    sub.add_parser("train", help="request a training run (mlops train request --help)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command in PASSTHROUGH:
        args.args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if getattr(args, "with_prometheus", False) and args.no_services:
        parser.error("--with-prometheus needs services to scrape; drop --no-services")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The CLI talks to people: client chatter (rebalances, coordinator retries right after a broker
    # start, which aiokafka retries itself) stays out; libraries may raise their own loggers' levels,
    # so the filter sits on the handler.
    logging.getLogger().handlers[0].setLevel(logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    overrides = {"services": args.services} if getattr(args, "services", None) else {}
    if getattr(args, "profile", None):
        overrides["profile"] = args.profile
    try:
        settings = stack_settings(running_first=args.command in ("down", "status"), **overrides)
    except ValidationError as invalid:  # a bad MLOPS_* setting: one line each, not a traceback
        for error in invalid.errors():
            name = "MLOPS_" + "_".join(str(part) for part in error["loc"]).upper()
            console.print(f"[red]error:[/] {name}: {error['msg']}")
        return 2
    commands = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "topics": cmd_topics,
        "demo": cmd_demo,
        "watch": cmd_watch,
        "reports": cmd_reports,
        "model": cmd_model,
        "score": cmd_score,
        "replay": cmd_replay,
        **{name: passthrough(module) for name, module in PASSTHROUGH.items()},
    }
    try:
        # Ops tooling, and the tools it runs, talk to a locked-down local bus as its super user
        # (unless told otherwise: an explicit KAFKA_SASL_* wins).
        # ...and reach the cluster profile's state servers (PostgreSQL, the MLflow tracking server).
        # (Not for the commands that only start, stop or list things: `up` hands each process its own.)
        stores = (
            contextlib.nullcontext() if args.command in STARTS_AND_STOPS else stores_environment(settings)
        )
        with bus_access.ops_environment(settings), stores:
            return commands[args.command](settings, args)
    except (KafkaInfraError, PrometheusError, LabelStudioError, *StoreError) as err:
        console.print(f"[red]error:[/] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
