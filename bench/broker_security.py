"""Throughput cost of the locked-down bus against plaintext, in the same run (issue #14).

`python -m bench.broker_throughput` with `--security both` (its default) lands here. Two private
brokers run side by side, each in its own temp folder: plaintext on 19492/19493, and locked down on
19592/19593 (SASL_PLAINTEXT / SCRAM-SHA-512, the StandardAuthorizer, the principals and ACLs of
contracts/access.py applied at start, its secrets folder inside its temp folder). The `--warmup` runs go
to both, then the measured runs are interleaved (plain, scram, plain, scram, ...) so that machine
noise hits both alike. Each run is bench/broker_throughput.py's `one_run` (same figures, same client
settings); reported per mode: the medians, and the ratio scram/plaintext of each median (and, in the
JSON, the median of the ratios of each adjacent plain/scram pair of runs).

Who is measured: the SCRAM side's figures are taken as the super user, logged in with SCRAM (ops
tooling's super user uses PLAIN by default; the bench pins SCRAM). The StandardAuthorizer sees every
request, but it lets a super user through before it matches any ACL, so those figures hold SASL's
cost (the SCRAM handshake of each new connection, which is off the produce clock but inside the group
join, and SASL_PLAINTEXT's framing, no encryption) and not the per-principal ACL matching every other
principal pays. So each SCRAM run adds
one figure: the pipelined produce rate to `records.raw` (the platform's topics are created on the SCRAM
broker) as the `producer` principal, whose every request is matched against its ACLs, and as the super
user on the same topic for the same count, the two in alternating order from run to run; their ratio
is the ACL check's cost on its own.

Broker start on the SCRAM side includes formatting the super user in and applying the access plan
(infra/kafka/BusAccess.java run by `java`), so it is not comparable with the plaintext start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
from contextlib import ExitStack
from statistics import median
from typing import Any

from rich.table import Table

from bench.broker_throughput import (
    BENCH_PORT,
    FIGURES,
    RESULTS,
    console,
    delete_topics,
    machine_info,
    medians_of,
    one_run,
    payloads,
    produce_pipelined,
    report,
    start_broker,
)
from contracts.access import PRODUCER
from contracts.topics import RECORDS_RAW
from infra.bus_access import MECHANISM, SUPER_USER, client_security, passwords, remember
from infra.settings import REPO_ROOT, InfraSettings
from infra.topics import ensure_topics, platform_topics

SCRAM_PORT = 19592  # its controller on 19593
MODES = ("plaintext", "scram")
ACL_FIGURES = [  # (json key, title, format): SCRAM runs only
    ("acl_producer_msgs_per_s", f"{RECORDS_RAW} produce as {PRODUCER} (ACLs) msg/s", "{:,.0f}"),
    ("acl_super_msgs_per_s", f"{RECORDS_RAW} produce as super user msg/s", "{:,.0f}"),
]


async def acl_pair(
    args: argparse.Namespace, bootstrap: str, security: dict[str, Any], run: int, values: list[bytes]
) -> dict[str, Any]:
    """Pipelined produce of `--messages` to records.raw as `producer` and as the super user."""
    order: list[tuple[str, dict[str, Any] | None]] = [("producer", security), ("super", None)]
    seconds = {}
    for who, options in order if run % 2 else order[::-1]:
        seconds[who] = await produce_pipelined(
            bootstrap, RECORDS_RAW, values, args.messages, args.window, options
        )
    return {
        "acl_first": "producer" if run % 2 else "super",
        "acl_producer_msgs_per_s": args.messages / seconds["producer"],
        "acl_super_msgs_per_s": args.messages / seconds["super"],
        "acl_producer_over_super": seconds["super"] / seconds["producer"],
    }


async def interleaved(
    args: argparse.Namespace, brokers: dict[str, str], producer_security: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Warm-ups (run < 1) and measured runs, each run on both brokers one after the other."""
    values = payloads(args.size)
    every: dict[str, list[dict[str, Any]]] = {mode: [] for mode in brokers}
    for run in range(1 - args.warmup, args.runs + 1):
        for mode, bootstrap in brokers.items():
            result = await one_run(args, bootstrap, run, values)
            if mode == "scram":
                result |= await acl_pair(args, bootstrap, producer_security, run, values)
            every[mode].append(result)
            label = f"run {run}/{args.runs}" if run > 0 else "warm-up run (not counted)"
            extra = (
                f", {RECORDS_RAW} as {PRODUCER} {result['acl_producer_msgs_per_s']:,.0f} / as super user "
                f"{result['acl_super_msgs_per_s']:,.0f} msg/s"
                if mode == "scram"
                else ""
            )
            console.print(
                f"{label} ({mode}): produce {result['produce_msgs_per_s']:,.0f} msg/s, "
                f"consume {result['consume_msgs_per_s']:,.0f} msg/s{extra}"
            )
    for mode, bootstrap in brokers.items():
        await delete_topics(bootstrap, [t for r in every[mode] for t in r["topics"]])
    return every


def comparison(
    medians: dict[str, dict[str, float]], paired: dict[str, float], starts: dict[str, list[float]]
) -> None:
    table = Table(title="The locked-down bus against plaintext (medians; SCRAM as the super user)")
    for title in ("figure", *MODES, "scram/plaintext", "median of run-pair ratios"):
        table.add_column(title, justify="left" if title == "figure" else "right")
    plain, scram = medians["plaintext"], medians["scram"]
    for key, title, fmt in FIGURES:
        if key in plain:
            ratio = scram[key] / plain[key]
            table.add_row(
                title, fmt.format(plain[key]), fmt.format(scram[key]), f"{ratio:.2f}", f"{paired[key]:.2f}"
            )
    for key, title, fmt in ACL_FIGURES:
        table.add_row(title, "", fmt.format(scram[key]), "", "")
    ratio = scram["acl_producer_msgs_per_s"] / scram["acl_super_msgs_per_s"]
    table.add_row(f"{PRODUCER}/super user, {RECORDS_RAW}", "", f"{ratio:.2f}", "", f"{paired['acl']:.2f}")
    table.add_row("broker start s", *(f"{median(starts[m]):.1f}" for m in MODES), "", "")
    console.print(table)


def compare(args: argparse.Namespace, command: str) -> None:
    jars_dir = InfraSettings().jars_dir
    info = machine_info(jars_dir, external=False)
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with ExitStack() as stack:
        plain, plain_starts = start_broker(args, stack, jars_dir, port=BENCH_PORT)
        scram, scram_starts = start_broker(args, stack, jars_dir, secure=True, port=SCRAM_PORT)
        assert scram.secrets_dir is not None
        ensure_topics(scram.bootstrap_servers, platform_topics(3, 1))
        producer_security = client_security(PRODUCER, passwords(scram.secrets_dir)[PRODUCER])
        # The super user logs in with PLAIN by default (the broker's own config); this bench measures
        # SCRAM, so its super-user clients use the SCRAM credentials the access plan made for it.
        admin = passwords(scram.secrets_dir)[SUPER_USER]
        remember(scram.bootstrap_servers, client_security(SUPER_USER, admin, mechanism=MECHANISM))
        brokers = {"plaintext": plain.bootstrap_servers, "scram": scram.bootstrap_servers}
        every = asyncio.run(interleaved(args, brokers, producer_security))
    info["loadavg_at_end"] = os.getloadavg()
    starts = {"plaintext": plain_starts, "scram": scram_starts}
    keys = [key for key, _, _ in FIGURES + ACL_FIGURES]
    modes: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        runs = [r for r in every[mode] if r["run"] >= 1]
        modes[mode] = {
            "bootstrap": brokers[mode],
            "broker_start_s": starts[mode],
            "broker_start_median_s": median(starts[mode]),
            "warmup_runs": [r for r in every[mode] if r["run"] < 1],
            "runs": runs,
            "median": medians_of(runs, keys),
        }
        report(runs, modes[mode]["median"], starts[mode], mode)
    medians = {mode: modes[mode]["median"] for mode in MODES}
    pairs = list(zip(modes["plaintext"]["runs"], modes["scram"]["runs"], strict=True))
    ratios = {key: medians["scram"][key] / medians["plaintext"][key] for key in medians["plaintext"]}
    paired = {key: median(s[key] / p[key] for p, s in pairs) for key in medians["plaintext"]}
    paired["acl"] = median(r["acl_producer_over_super"] for r in modes["scram"]["runs"])
    comparison(medians, paired, starts)
    acl = {
        "topic": RECORDS_RAW,
        "principal": PRODUCER,
        "median_producer_msgs_per_s": medians["scram"]["acl_producer_msgs_per_s"],
        "median_super_msgs_per_s": medians["scram"]["acl_super_msgs_per_s"],
        "ratio_producer_over_super": medians["scram"]["acl_producer_msgs_per_s"]
        / medians["scram"]["acl_super_msgs_per_s"],
        "median_of_run_ratios": paired.pop("acl"),
    }
    params = vars(args) | {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "scram_port": SCRAM_PORT,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "broker_throughput",
        "command": command,
        "date": date,
        "machine": info,
        "parameters": params,
        "scram_client": "super user (kafka_options); the acl figures also as the producer principal",
        "modes": modes,
        "ratio_scram_over_plaintext": ratios,
        "median_of_run_pair_ratios_scram_over_plaintext": paired,
        "acl": acl,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")
