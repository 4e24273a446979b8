"""Ask the training service for a run from a shell (what `mlops train` calls):

    python -m services.training.cli request [--bootstrap HOST:PORT] [--reason manual|schedule]
        [--window-start ISO] [--window-end ISO] [--ignore-change-points] [--requested-by NAME]
        [--topic TOPIC]

Publishes one TrainingRequested, with the labels topic's end offsets (its label watermark), and prints
its event id, its window and a note on the window as JSON. Like `POST /train`, a request without a
window starts at the last concept change training acted on, read from the service's state file when it
is on this machine (the note says when it is not); a window that straddles it is honoured with a
warning, also printed on stderr. Exit codes: 0 published, 2 refused (bad flags, or Kafka unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import datetime

from contracts.events import TrainingRequested, TrainingRequestedPayload
from servicekit.broker import EventPublisher, make_broker
from servicekit.cli_args import prog
from servicekit.watermark import end_offsets
from services.training.adapters.state import TrainingState
from services.training.domain.manual_window import ChangePoint, ManualWindow, manual_window
from services.training.settings import TrainingSettings

PUBLISHED, REFUSED = 0, 2


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a timezone, e.g. {text}+00:00")
    return moment


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog("python -m services.training.cli"), description="Ask for training."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    request = sub.add_parser("request", help="publish a TrainingRequested")
    request.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    request.add_argument("--reason", choices=("manual", "schedule"), default="manual")
    request.add_argument("--window-start", type=_moment, help="ISO 8601 with timezone (inclusive)")
    request.add_argument("--window-end", type=_moment, help="ISO 8601 with timezone (exclusive)")
    request.add_argument(
        "--ignore-change-points",
        action="store_true",
        help="without a window: all history, not since the change",
    )
    request.add_argument("--requested-by", default=None, help="who asks (default: the OS user)")
    request.add_argument("--topic", default=None, help="topic (default: the service's requests topic)")
    request.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for Kafka")
    args = parser.parse_args(argv)
    if args.window_start and args.window_end and args.window_start >= args.window_end:
        parser.error("--window-start must be before --window-end")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def build_request(
    args: argparse.Namespace,
    model_name: str,
    window: ManualWindow | None = None,
    watermark: dict[int, int] | None = None,
) -> TrainingRequested:
    window = window or manual_window(args.window_start, args.window_end, None, args.ignore_change_points)
    payload = TrainingRequestedPayload(
        model_name=model_name,
        reason=args.reason,
        requested_by=args.requested_by or f"cli:{getpass.getuser()}",
        window_start=window.start,
        window_end=window.end,
        labels_watermark={str(p): o for p, o in sorted(watermark.items())} if watermark is not None else None,
    )
    return TrainingRequested.create(payload, producer="training-cli")


def choose_window(args: argparse.Namespace, settings: TrainingSettings) -> ManualWindow:
    """The service's rule (domain/manual_window.py) with the change point from its state file."""
    path = settings.resolved_state_path
    change: ChangePoint | None = TrainingState(path).last_change_point() if path.exists() else None
    window = manual_window(args.window_start, args.window_end, change, args.ignore_change_points)
    if path.exists():
        return window
    unseen = f"{window.note} (training's state {path} is not on this machine: change points not checked)"
    return ManualWindow(window.start, window.end, unseen, window.warning)


async def label_watermark(settings: TrainingSettings, timeout: float) -> dict[int, int] | None:
    try:
        return await end_offsets(settings, settings.labels_topic, timeout)
    except Exception as exc:  # published anyway: the run's lineage will say it had no watermark
        print(
            f"warning: no label watermark ({type(exc).__name__}): the run will not wait for labels",
            file=sys.stderr,
        )
        return None


async def publish(settings: TrainingSettings, event: TrainingRequested, topic: str, timeout: float) -> None:
    broker = make_broker(settings)
    try:
        await asyncio.wait_for(broker.connect(), timeout)
        await asyncio.wait_for(EventPublisher(broker, "training-cli").publish(event, topic=topic), timeout)
    finally:
        await broker.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {"kafka_bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = TrainingSettings(**overrides)
    window = choose_window(args, settings)
    topic = args.topic or settings.requests_topic
    try:
        watermark = asyncio.run(label_watermark(settings, args.timeout))
        event = build_request(args, settings.model_name, window, watermark)
        asyncio.run(publish(settings, event, topic, args.timeout))
    except Exception as exc:  # unreachable broker, refused auth...: a clear message, no traceback
        print(
            f"error: could not publish to {settings.kafka_bootstrap_servers}: {type(exc).__name__}",
            file=sys.stderr,
        )
        return REFUSED
    if window.warning:
        print(f"warning: {window.warning}", file=sys.stderr)
    published = {"event_id": str(event.event_id), "topic": topic, "model_name": settings.model_name}
    print(json.dumps(published | window.response()))
    return PUBLISHED


if __name__ == "__main__":
    sys.exit(main())
