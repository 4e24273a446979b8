"""Where a long command's CPU goes, by component: run it (e.g. `bash .ci/run`, which is `make test` on a
fresh clone), read every process's user + system time from /proc each second while it runs, and sum the
last reading of each process started after the command by what it is (a Kafka broker, a service, pytest,
the mlops CLI by subcommand, ...).

A process that lives less than the sampling period can be missed, and each one's last second is lost,
so the sums are a floor. Only the command's descendants count: this process is their subreaper, so
the daemons it leaves (the services `mlops up` starts in sessions of their own) stay in its tree, and
it reaps them. The report also gives the kernel's own sum for the reaped (`cpu_children_s`).

    .venv/bin/python -m bench.command_cpu [--period 1.0] [--out bench/results/command_cpu.json] -- CMD ...
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
# (pattern on the command line, component); the first that matches names the process.
KINDS: list[tuple[str, str]] = [
    (r"java .*kafka\.Kafka\b.*/node-\d/", "kafka broker (cluster node)"),
    (r"java .*kafka\.Kafka\b", "kafka broker"),
    (r"java .*StorageTool", "kafka storage tool"),
    (r"java .*BusAccess\b", "kafka ACL tool"),
    (r"javac ", "javac (the ACL tool, once)"),
    (r"java .*plexus\.classworlds", "maven (Kafka's jars)"),
    (r"-m services\.(\w+)", "service {0}"),
    (r"-m infra\.cli (\w+)", "mlops {0}"),
    (r"-m pytest", "pytest"),
    (r"/st .*run http", "schemathesis"),
    (r"-m mypy", "mypy"),
    (r"pip_compileall|/uv |-m pip|ensurepip|cc1plus|/as |-m venv", "install"),
    (r"label-studio version", "label studio: template database"),
    (r"label-studio", "label studio"),
    (r"airflow", "airflow"),
    (r"postgres", "postgresql"),
    (r"redis-server", "redis"),
    (r"-m mlflow|mlflow server", "mlflow server"),
    (r"chrom", "chromium (label studio's browser tests)"),
    (r"-m (workbench\.\w+|bench\.\w+|infra\.\w+|contracts\.\w+|tests\.\w+)", "{0}"),
    (r"multiprocessing\.spawn|multiprocessing-fork", "multiprocessing workers"),
]


def component(cmdline: str) -> str:
    for pattern, name in KINDS:
        if found := re.search(pattern, cmdline):
            return name.format(*found.groups())
    words = cmdline.split()
    return f"other: {Path(words[0]).name if words else '?'}"


def read_process(pid: str) -> tuple[str, float, str, str] | None:
    """(pid:start, CPU seconds so far, command line, parent pid) of a process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    return f"{pid}:{fields[19]}", (int(fields[11]) + int(fields[12])) / TICK, cmdline.strip(), fields[1]


def descends(pid: str, parents: dict[str, str], root: str) -> bool:
    for _ in range(64):
        if pid == root:
            return True
        if (parent := parents.get(pid)) is None:
            return False
        pid = parent
    return False


def sample(command: list[str], period: float) -> tuple[int, dict[str, list[Any]], float]:
    """Runs `command`; returns its exit code, {pid:start: [cmdline, cpu s]} of its descendants (the
    daemons it leaves, such as the services `mlops up` starts, included: this process is their
    subreaper, so they stay in its tree) and its wall seconds."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = str(os.getpid())
    started = time.monotonic()
    child = subprocess.Popen(command)
    seen: dict[str, list[Any]] = {}
    code: int | None = None
    while code is None:
        table = {pid: found for pid in os.listdir("/proc") if pid.isdigit() and (found := read_process(pid))}
        parents = {pid: found[3] for pid, found in table.items()}
        for pid, (key, cpu, cmdline, _) in table.items():
            if pid != me and descends(pid, parents, me):
                entry = seen.setdefault(key, [cmdline, 0.0])
                entry[0] = entry[0] or cmdline  # a zombie's is empty
                entry[1] = cpu
        while True:  # reap the orphans handed to this process, after their last reading above
            try:
                pid_done, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid_done == 0:
                break
            if pid_done == child.pid:
                code = child.returncode = os.waitstatus_to_exitcode(status)
        if code is None:
            time.sleep(period)
    return code, seen, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--period", type=float, default=1.0, help="seconds between readings of /proc")
    parser.add_argument("--out", type=Path, default=Path("bench/results/command_cpu.json"))
    parser.add_argument("--top", type=int, default=40, help="components printed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    if not 0.05 <= args.period <= 60:
        parser.error("--period must be between 0.05 and 60 seconds")
    if not Path("/proc/self/stat").exists():
        parser.error("this reads /proc, which Linux has and this system has not")
    code, seen, wall = sample(command, args.period)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for cmdline, cpu in seen.values():
        entry = totals[component(cmdline)]
        entry[0] += cpu
        entry[1] += 1
    counted = sum(cpu for cpu, _ in totals.values())
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])
    report = {
        "command": command, "exit_code": code, "wall_s": round(wall, 1),
        "cpu_counted_s": round(counted, 1), "cpu_children_s": round(children.ru_utime + children.ru_stime, 1),
        "processes": len(seen),
        "components": [{"name": n, "cpu_s": round(c, 1), "processes": int(k)} for n, (c, k) in ranked],
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"exit {code}; {wall:.0f} s wall; {counted:.0f} s of CPU counted in {len(seen)} processes",
        file=sys.stderr,
    )
    for name, (cpu, processes) in ranked[: args.top]:
        print(
            f"{cpu:8.1f} s {100 * cpu / max(counted, 1e-9):5.1f} % {int(processes):5d} x  {name}",
            file=sys.stderr,
        )
    sys.exit(code)


if __name__ == "__main__":
    main()
