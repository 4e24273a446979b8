"""Ask the training service for a run from a shell (what `mlops train` calls):

    python -m services.training.cli request [--bootstrap HOST:PORT] [--reason manual|schedule]
        [--window-start ISO] [--window-end ISO] [--requested-by NAME] [--topic TOPIC]

Publishes one TrainingRequested and prints its event id as JSON. Exit codes: 0 published, 2 refused
(bad flags, or Kafka unreachable).
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
    parser = argparse.ArgumentParser(prog="python -m services.training.cli", description="Ask for training.")
    sub = parser.add_subparsers(dest="command", required=True)
    request = sub.add_parser("request", help="publish a TrainingRequested")
    request.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    request.add_argument("--reason", choices=("manual", "schedule"), default="manual")
    request.add_argument("--window-start", type=_moment, help="ISO 8601 with timezone (inclusive)")
    request.add_argument("--window-end", type=_moment, help="ISO 8601 with timezone (exclusive)")
    request.add_argument("--requested-by", default=None, help="who asks (default: the OS user)")
    request.add_argument("--topic", default=None, help="topic (default: the service's requests topic)")
    request.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for Kafka")
    args = parser.parse_args(argv)
    if args.window_start and args.window_end and args.window_start >= args.window_end:
        parser.error("--window-start must be before --window-end")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def build_request(args: argparse.Namespace, model_name: str) -> TrainingRequested:
    payload = TrainingRequestedPayload(
        model_name=model_name,
        reason=args.reason,
        requested_by=args.requested_by or f"cli:{getpass.getuser()}",
        window_start=args.window_start,
        window_end=args.window_end,
    )
    return TrainingRequested.create(payload, producer="training-cli")


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
    event = build_request(args, settings.model_name)
    topic = args.topic or settings.requests_topic
    try:
        asyncio.run(publish(settings, event, topic, args.timeout))
    except Exception as exc:  # unreachable broker, refused auth...: a clear message, no traceback
        print(
            f"error: could not publish to {settings.kafka_bootstrap_servers}: {type(exc).__name__}",
            file=sys.stderr,
        )
        return REFUSED
    print(json.dumps({"event_id": str(event.event_id), "topic": topic, "model_name": settings.model_name}))
    return PUBLISHED


if __name__ == "__main__":
    sys.exit(main())
