"""`mlops replay`: re-read a window of the log into a fresh consumer group of one service, rebuilding its
state in a fresh folder, then stop.

    mlops replay SERVICE --group NAME (--from-offset N | --from-time ISO8601) [--topic TOPIC]
                 [--state-dir DIR] [--publish] [--compare]

SERVICE is features, drift or audit. The service runs as a one-off process (`python -m services.<name>`)
with its ordinary settings pointed elsewhere: the fresh group, a state folder (default
<state_dir>/replays/<group>/, feature store, ledger and databases included) and the replay plan
(servicekit/replay.py): read up to the end offsets captured now, publish nothing unless --publish.
Progress goes to stderr, the summary (JSON) to stdout, and a `ReplayCompleted` event to
`platform.replays`, where the audit trail records it. The process itself: infra/replay_process.py.

Exit codes: 0 done (and, with --compare, the same as live), 1 the replay process failed or --compare
found differences, 2 bad input (unknown service or topic, a group that exists, an offset outside the
log, a time after its last record) or a cluster that does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from contracts.events import ReplayCompleted, ReplayCompletedPayload, ReplayedPartition
from infra.replay_process import ProcessRun, replay_env, run_replay_process, withheld_counts
from infra.replay_window import ReplayKafka, ReplayRefused, Start, Window
from infra.settings import InfraSettings
from servicekit.broker import EventPublisher, make_broker
from servicekit.replay import ReplayPlan
from servicekit.settings import ServiceSettings

DONE, FAILED, REFUSED = 0, 1, 2
REPLAYABLE = ("features", "drift", "audit")


@dataclass(frozen=True)
class Target:
    """One replayable service: its settings prefix and where its state goes in the replay's folder."""

    name: str
    prefix: str

    def live_settings(self, **overrides: Any) -> ServiceSettings:
        if self.name == "features":
            from services.features.settings import FeaturesSettings

            return FeaturesSettings(**overrides)
        if self.name == "drift":
            from services.drift.settings import DriftSettings

            return DriftSettings(**overrides)
        from services.audit.settings import AuditSettings

        return AuditSettings(**overrides)

    def groups(self, group: str) -> dict[str, list[str]]:
        """Consumer group -> topics, as the service itself subscribes them under the replay's group id
        (its app is built, never started, with its state in a throwaway folder)."""
        with tempfile.TemporaryDirectory() as scratch:
            settings = self.live_settings(
                group_id=group, state_dir=Path(scratch), **self.fresh_state(Path(scratch))
            )
            module = importlib.import_module(f"services.{self.name}.app")
            registered = module.create_app(settings).state.subscriptions.registered
        groups: dict[str, list[str]] = {}
        for subscription in registered:
            groups.setdefault(subscription.group_id, []).extend(subscription.topics)
        return groups

    def fresh_state(self, state: Path) -> dict[str, str]:
        """Settings that would otherwise point at the live state (a database URL, a ledger, a file)."""
        return {
            "features": {"ledger_path": str(state / "features" / "ledger.db")},
            "drift": {"state_path": str(state / "drift" / "drift.db")},
            "audit": {"database_url": f"sqlite:///{(state / 'audit' / 'audit.db').resolve()}"},
        }[self.name]

    def fresh_env(self, state: Path) -> dict[str, str]:
        return {f"{self.prefix}{name.upper()}": value for name, value in self.fresh_state(state).items()}


def service(text: str) -> Target:
    if text not in REPLAYABLE:
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot be replayed: replay rebuilds the state of {', '.join(REPLAYABLE)}"
        )
    return Target(text, f"{text.upper()}_")


def moment(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from err
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. {text}Z or {text}+00:00)")
    return when


def group_name(text: str) -> str:
    """Also a folder name (the default state folder), so nothing that could climb out of it."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", text):
        raise argparse.ArgumentTypeError(f"letters, digits, '.', '_' and '-' (200 at most), got {text!r}")
    return text


def offset(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"an offset is a whole number >= 0, got {text!r}")
    return int(text)


def add_parser(sub: Any) -> None:
    replay = sub.add_parser("replay", help="rebuild a service's state from the log into a fresh group")
    replay.add_argument("service", type=service, help=f"one of {', '.join(REPLAYABLE)}")
    replay.add_argument(
        "--group", type=group_name, required=True, help="fresh consumer group to read with (must not exist)"
    )
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-offset", type=offset, help="first offset, on every partition read")
    start.add_argument("--from-time", type=moment, help="first record at or after this time (ISO 8601)")
    replay.add_argument("--topic", help="read only this one of the service's topics")
    replay.add_argument(
        "--state-dir", type=Path, help="where the state is rebuilt (default: <state>/replays/<group>)"
    )
    replay.add_argument("--publish", action="store_true", help="publish the service's outgoing events too")
    replay.add_argument("--compare", action="store_true", help="compare the rebuilt state with the live one")


def cmd_replay(infra: InfraSettings, args: argparse.Namespace) -> int:
    target: Target = args.service
    # The live service's settings, as `mlops up` gives them: its cluster and state folder.
    live = target.live_settings(kafka_bootstrap_servers=infra.bootstrap_servers, state_dir=infra.state_dir)
    state = (args.state_dir or live.state_dir / "replays" / args.group).resolve()
    start = Start(offset=args.from_offset, time=args.from_time)
    window = _window_or_refusal(target, live, args.group, args.topic, start)
    if window is None:
        return REFUSED
    plan = ReplayPlan(group=args.group, stop_offsets=window.stop_offsets(), publish=args.publish,
                      report=state / "replay-report.json")  # fmt: skip
    print(f"replaying {window.records} records of {target.name} from {start.describe()} into {args.group} "
          f"(state {state})", file=sys.stderr)  # fmt: skip
    run = _run(target, live, window, plan, state)
    if run.first is None:
        print(f"mlops replay: the {target.name} replay process exited ({run.returncode}) before the "
              f"window's end; its state is incomplete (log: {state / 'replay.log'})",
              file=sys.stderr)  # fmt: skip
        return FAILED
    event = _completed(target, args.group, window, run.seconds, args.publish, withheld_counts(plan), state)
    asyncio.run(_announce(live, event))
    return _report(_summary(event, run, run.first), live, state, window, args.compare)


def _window_or_refusal(
    target: Target, live: ServiceSettings, group: str, topic: str | None, start: Start
) -> Window | None:
    """The window to replay, its first offsets committed into the fresh group; None (said on stderr)
    when the input is refused or the cluster does not answer."""
    try:
        return asyncio.run(_prepare(target, live, group, topic, start))
    except ReplayRefused as err:
        print(f"mlops replay: {err}", file=sys.stderr)
    except KafkaError as err:
        print(
            f"mlops replay: Kafka at {live.kafka_bootstrap_servers} did not answer: {err!r}", file=sys.stderr
        )
    return None


async def _prepare(
    target: Target, live: ServiceSettings, group: str, topic: str | None, start: Start
) -> Window:
    groups = target.groups(group)
    topics = {t for ts in groups.values() for t in ts}
    if topic is not None and topic not in topics:
        raise ReplayRefused(f"{target.name} does not read {topic!r}; it reads {', '.join(sorted(topics))}")
    async with ReplayKafka(live.kafka_bootstrap_servers) as kafka:
        await kafka.refuse_live_groups(list(groups))
        window = await kafka.window(groups, {topic} if topic else topics, start)
        await kafka.commit_starts(window)
    return window


def _run(target: Target, live: ServiceSettings, window: Window, plan: ReplayPlan, state: Path) -> ProcessRun:
    state.mkdir(parents=True, exist_ok=True)
    env = replay_env(
        target.prefix, target.fresh_env(state), live.mlflow_uri, live.kafka_bootstrap_servers, plan.group,
        state, plan,
    )  # fmt: skip
    return run_replay_process(target.name, live.kafka_bootstrap_servers, window, env, state / "replay.log")


def _summary(event: ReplayCompleted, run: ProcessRun, first: float) -> dict[str, Any]:
    """What stdout shows: the announced event's facts, the speed, and the process's start-up time
    (`first`: when its first records were committed)."""
    done = event.payload
    return {
        "service": done.service, "group": done.group, "records": done.records,
        "seconds": round(run.seconds, 3), "records_per_s": round(done.records / run.seconds, 1),
        "startup_s": round(first - run.started, 3), "publish": done.publish, "withheld": done.withheld,
        "state_dir": done.state_dir, "event_id": str(event.event_id),
    }  # fmt: skip


def _report(
    summary: dict[str, Any], live: ServiceSettings, state: Path, window: Window, compare: bool
) -> int:
    """The summary on stdout, with the rebuilt state compared to the live one under --compare; DONE, or
    FAILED when the comparison found differences."""
    same = True
    if compare:
        from infra.replay_compare import compare as compare_states

        summary["compare"] = compare_states(live, state, window)
        same = bool(summary["compare"]["same"])
    print(json.dumps(summary, indent=2))
    return DONE if same else FAILED


def _completed(
    target: Target,
    group: str,
    window: Window,
    seconds: float,
    publish: bool,
    withheld: dict[str, int],
    state: Path,
) -> ReplayCompleted:
    payload = ReplayCompletedPayload(
        service=target.name, group=group, records=window.records, duration_s=round(seconds, 3),
        publish=publish,
        partitions=[ReplayedPartition(topic=tp.topic, partition=tp.partition, from_offset=a, to_offset=b)
                    for tp, a, b in window.read()],
        withheld=withheld, state_dir=str(state), requested_by=getpass.getuser() or "unknown",
    )  # fmt: skip
    return ReplayCompleted.create(payload, producer="mlops-replay")


async def _announce(live: ServiceSettings, event: ReplayCompleted) -> None:
    broker = make_broker(live)
    async with broker:
        await broker.start()
        await EventPublisher(broker, "mlops-replay").publish(event)
