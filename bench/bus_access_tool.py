"""What starting the bus access tool (infra/kafka/BusAccess.java, run at every start of a locked-down
bus whose plan changed) costs before its first line: run as a source program (`java File.java`, which
compiles it in memory each time) against compiled once (infra/kafka_jars.py `source_program`).

Each round runs the tool both ways, in turn, with no arguments: it stops at its first line (the
missing argument), so what is timed is the JVM's start plus, for the source, the compile. The CPU of
each child (user + system) from the kernel's accounting; the one-time compile is reported apart.
Nothing here asserts on timings.

    .venv/bin/python -m bench.bus_access_tool [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import time

from infra.bus_plan import TOOL
from infra.kafka_jars import DEFAULT_JVM_OPTIONS, ensure_jars, java, source_program
from infra.settings import InfraSettings


def child_cpu_s(command: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, capture_output=True, check=False, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be between 1 and 100")
    jars_dir = ensure_jars(InfraSettings().jars_dir)
    as_source = [java(), *DEFAULT_JVM_OPTIONS, "-cp", f"{jars_dir}/*", str(TOOL)]
    started = time.monotonic()
    compiled = source_program(java(), jars_dir, TOOL)  # compiles unless an earlier run did
    rounds = []
    for _ in range(args.rounds):
        rounds.append({"source_cpu_s": child_cpu_s(as_source), "compiled_cpu_s": child_cpu_s(compiled)})
    source = statistics.median(r["source_cpu_s"] for r in rounds)
    classes = statistics.median(r["compiled_cpu_s"] for r in rounds)
    print(json.dumps({
        "compiled_command": compiled[-1], "first_call_s": round(time.monotonic() - started, 2),
        "rounds": rounds, "median_source_cpu_s": round(source, 3), "median_compiled_cpu_s": round(classes, 3),
        "compiled_over_source": round(classes / source, 3),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
