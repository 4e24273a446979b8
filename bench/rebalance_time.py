"""Rebalance time after a service instance dies (issue #14), on the cluster profile: how long after a
`kill -9` of instance 1 of a service its consumer group gives the dead instance's partitions to the
survivor, the survivor commits on them, and catches up; and how long a restarted instance takes to
hold partitions again.

    .venv/bin/python -m bench.rebalance_time --service ingest --kills 3 --rate 300
        [--services ingest,features,audit] [--kafka-port 19692] [--first-service-port 19701]
        [--postgres-port ..] [--mlflow-port ..] [--redis-port ..] [--state DIR]

It starts `mlops up --profile cluster --services ...` (two instances of the services that scale out)
in its own state folder, streams demo applications into records.raw at `--rate` (bench/
rebalance_stream.py, its own process), and for each of `--kills` rounds:
1. waits until the service's consumer group (its settings' `consumer_group`: `ingest` for ingest) is
   Stable with every instance a member holding partitions, its commits move and every partition's
   lag is under one batch;
2. SIGKILLs instance 1 (its pid from `mlops status --json`; for drift, which runs one active instance
   and a standby, the active one, and its group is `drift`, with one member) and polls
   the group every `--poll-s`:
   `detected_s` until the coordinator acts on the death, `reassigned_s` until the group is Stable
   without the dead member and its partitions are held again, `resumed_s` until each of them has a
   committed offset past its value at the kill, `caught_up_s` until their lag is under one batch (0 if
   the stream ended; the output says which);
3. runs `mlops up --profile cluster --services ...` again (it starts what is down: instance 1) and
   reports `restart_up_s` (that command), `joined_since_restart_s` and `rejoined_since_restart_s` (from
   its start until the group has a new member, and until it is Stable with every instance and the new
   one holds partitions; polled while the command runs) and `rejoined_s` (the latter, from its return;
   none for drift, whose restarted instance stands by).
Per round and median/min/max as JSON on stdout and in bench/results/rebalance_time.json, with the
consumer settings that bound the figures; the stack's logs in bench/results/rebalance_time-logs/
(both git-ignored). Timings are reported, never asserted; docs/benchmarks.md has the write-up.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.platform_stack import Stack
from bench.platform_throughput import add_stack_args, make_stack
from bench.rebalance_figures import Sample, done_after_kill, joined_at, rejoined_at, round_figures, summarise
from bench.rebalance_probe import GroupProbe, consumer_settings
from bench.rebalance_stream import start_stream, stop_stream
from bench.rebalance_targets import default_group, group_members, instance_pid, victim
from infra.settings import REPO_ROOT
from infra.supervisor import SCALES_OUT, STANDS_BY

RESULTS = REPO_ROOT / "bench" / "results"


def default_batch() -> int:
    """A batch subscriber's records per handler call, servicekit's default (`Subscriptions.on_raw`)."""
    from servicekit.consumer import Subscriptions

    return int(inspect.signature(Subscriptions.on_raw).parameters["max_records"].default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.rebalance_time", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--service", default="ingest", help=f"a service that scales out ({', '.join(SCALES_OUT)})")
    p.add_argument("--kills", type=int, default=3, help="rounds: kill, measure, restart")
    p.add_argument("--rate", type=float, default=300.0, help="records/s streamed into records.raw")
    p.add_argument("--services", default="ingest,features,audit", help="started (plus --service)")
    p.add_argument("--instances", type=int, default=2, help="instances of each service that scales out")
    p.add_argument("--group", help="consumer group to watch (default: the service's own)")
    p.add_argument("--batch", type=int, default=None, help="one batch, records (default: servicekit's)")
    p.add_argument("--poll-s", type=float, default=0.2, help="seconds between polls of the group")
    p.add_argument("--timeout-s", type=float, default=300.0, help="limit of each wait")
    p.add_argument("--state", type=Path, help="state folder (default: a new /tmp/rebal.*, removed after)")
    add_stack_args(p)
    p.add_argument("--out", type=Path, default=RESULTS / "rebalance_time.json")
    args = p.parse_args(argv)
    if args.service not in SCALES_OUT:
        p.error(f"--service {args.service}: not one that runs several instances ({', '.join(SCALES_OUT)})")
    if args.kills < 1 or args.rate <= 0 or args.instances < 2 or args.poll_s <= 0:
        p.error("--kills >= 1, --rate > 0, --instances >= 2 and --poll-s > 0, please")
    args.batch = args.batch or default_batch()
    return args


def services_to_start(args: argparse.Namespace) -> str:
    wanted = [s.strip() for s in args.services.split(",") if s.strip()]
    return ",".join(dict.fromkeys([*wanted, args.service]))


def log(message: dict[str, Any]) -> None:
    print(json.dumps(message, default=str), file=sys.stderr, flush=True)


class Bench:
    def __init__(
        self, args: argparse.Namespace, stack: Stack, probe: GroupProbe, stream: subprocess.Popen[str]
    ) -> None:
        self.args, self.stack, self.probe, self.stream = args, stack, probe, stream
        self.members = group_members(args.service, args.instances)  # in the group when steady

    def streaming(self) -> bool:
        return self.stream.poll() is None

    async def poll(self, since: float) -> Sample | None:
        try:
            return await self.probe.sample(since, self.streaming())
        except Exception as error:  # e.g. the coordinator busy for a moment: the next poll tries again
            log({"poll_error": f"{type(error).__name__}: {error}"})
            return None

    async def steady(self) -> Sample:
        """Wait until the group is Stable with every instance holding partitions, commits move, and
        every partition's lag is under one batch."""
        started = time.monotonic()
        previous: Sample | None = None
        while time.monotonic() - started < self.args.timeout_s:
            sample = await self.poll(started)
            if sample is not None:
                moving = previous is not None and sum(sample.committed.values()) > sum(
                    previous.committed.values()
                )
                calm = all(sample.lag([tp]) < self.args.batch for tp in self.probe.partitions)
                if sample.view.settled(self.members) and self.streaming() and moving and calm:
                    return sample
                if previous is None or sample.t - previous.t >= 1.0:
                    previous = sample  # commits are compared over about a second
            await asyncio.sleep(self.args.poll_s)
        raise TimeoutError(f"group {self.probe.group} not steady with {self.members} members in time")

    async def after_kill(self, before: Sample, t0: float) -> list[Sample]:
        after: list[Sample] = []
        while time.monotonic() - t0 < self.args.timeout_s:
            sample = await self.poll(t0)
            if sample is not None:
                after.append(sample)
                if done_after_kill(before.view, after, after[0].committed, self.args.batch):
                    break
            await asyncio.sleep(self.args.poll_s)
        return after

    async def restart(self, survivors: set[str]) -> dict[str, Any]:
        """`mlops up` again, polling while it runs and after it returns, until the restarted instance
        holds partitions."""
        services = services_to_start(self.args)
        started = time.monotonic()
        if self.args.service in STANDS_BY:  # the restarted instance stands by: it joins no group
            await asyncio.to_thread(self.stack.mlops, "up", "--profile", "cluster", "--services", services)
            return {"restart_up_s": round(time.monotonic() - started, 2), "rejoined_s": None}
        up = asyncio.create_task(
            asyncio.to_thread(self.stack.mlops, "up", "--profile", "cluster", "--services", services)
        )
        samples: list[Sample] = []
        returned: float | None = None
        while time.monotonic() - started < self.args.timeout_s + 600:
            if returned is None and up.done():
                await up  # raises if `mlops up` failed
                returned = time.monotonic() - started
            sample = await self.poll(started)
            if sample is not None:
                samples.append(sample)
                later = [s for s in samples if returned is not None and s.t >= returned]
                if rejoined_at(later, survivors, self.members) is not None:
                    break
            await asyncio.sleep(self.args.poll_s)
        if returned is None:
            up.cancel()
            return {"restart_up_s": None, "rejoined_s": None}
        later = [s for s in samples if s.t >= returned]
        rejoined = rejoined_at(later, survivors, self.members)
        return {
            "restart_up_s": round(returned, 2),
            "joined_since_restart_s": joined_at(samples, survivors),
            "rejoined_since_restart_s": rejoined_at(samples, survivors, self.members),
            "rejoined_s": round(rejoined - returned, 2) if rejoined is not None else None,
        }

    async def round(self, number: int) -> dict[str, Any]:
        before = await self.steady()
        killed = victim(self.stack, self.args.service, self.args.instances)
        pid = instance_pid(self.stack, killed)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        after = await self.after_kill(before, t0)
        result: dict[str, Any] = {"round": number, "killed": killed, "killed_pid": pid, "polls": len(after)}
        result["before"] = {m: sorted(p) for m, p in before.view.members.items()}
        if after:
            result |= round_figures(before.view, after, after[0].committed, self.args.batch)
            result["committed_at_kill"] = {f"{t}:{p}": o for (t, p), o in sorted(after[0].committed.items())}
        survivors = set(after[-1].view.members) if after else set()
        log({"round": number, **{k: v for k, v in result.items() if k.endswith("_s")}})
        result |= await self.restart(survivors)
        log(
            {
                "round": number,
                **{k: result.get(k) for k in ("restart_up_s", "joined_since_restart_s", "rejoined_s")},
            }
        )
        return result


async def measure(
    args: argparse.Namespace, stack: Stack, group: str, stream: subprocess.Popen[str], rounds: list[Any]
) -> None:
    """Append each round to `rounds` as it ends (a failure later keeps the rounds measured)."""
    probe = GroupProbe(stack.bootstrap, group)
    await probe.start()
    try:
        bench = Bench(args, stack, probe, stream)
        for number in range(1, args.kills + 1):
            rounds.append(await bench.round(number))
    finally:
        await probe.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    group = args.group or default_group(args.service)
    state = args.state or Path(tempfile.mkdtemp(prefix="rebal.", dir="/tmp"))
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # PostgreSQL runs as the `postgres` OS user and must reach its folder in it
    stack = make_stack(args, state, "cluster", args.instances)
    services = services_to_start(args)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "service": args.service, "group": group,
        "services": services, "rate": args.rate, "batch": args.batch, "poll_s": args.poll_s,
        "consumer": consumer_settings(), "args": {k: str(v) for k, v in vars(args).items()},
    }  # fmt: skip
    result["rounds"] = []
    stream: subprocess.Popen[str] | None = None
    code = 0
    try:
        started = time.monotonic()
        stack.mlops("up", "--profile", "cluster", "--services", services)
        result["up_s"] = round(time.monotonic() - started, 1)
        stream = start_stream(args, stack, stack.settings().logs_dir)
        asyncio.run(measure(args, stack, group, stream, result["rounds"]))
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        code = 1
    finally:
        result["summary"] = summarise(result["rounds"])
        if stream is not None:
            result["stream"] = stop_stream(stream)
        stack.down()
        logs = RESULTS / "rebalance_time-logs"
        shutil.rmtree(logs, ignore_errors=True)
        if (state / "logs").exists():
            shutil.copytree(state / "logs", logs, dirs_exist_ok=True)
        if args.state is None:
            shutil.rmtree(state, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
