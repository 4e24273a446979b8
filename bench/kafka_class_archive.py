"""What the class archive saves a broker's start (infra/kafka_classes.py): one broker started with
the jars' archive and one from the same jars without it (a folder of hard links, no archive), in
turn, each until it answers, then stopped. Per start: the broker's CPU (user + system, from /proc) at
the moment it answers, and the wall time to that moment. Reported: each round, the medians and their
ratio. Nothing here asserts on timings.

    .venv/bin/python -m bench.kafka_class_archive [--rounds 5] [--port 25192]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from infra.kafka_classes import ensure_class_archive
from infra.kafka_jars import ARCHIVE_NAME, ensure_jars
from infra.kafka_local import LocalKafka
from infra.settings import InfraSettings

TICK = os.sysconf("SC_CLK_TCK")


def start_once(home: Path, jars_dir: Path, port: int, archive: bool) -> dict[str, float | bool]:
    shutil.rmtree(home, ignore_errors=True)
    kafka = LocalKafka(
        home=home, jars_dir=jars_dir, port=port, controller_port=port + 1, class_archive=archive
    )
    started = time.monotonic()
    try:
        kafka.start(timeout_s=180)
        wall = time.monotonic() - started
        pid = kafka.pid()
        assert pid is not None
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        mapped = ARCHIVE_NAME in Path(f"/proc/{pid}/maps").read_text()
        return {"cpu_s": (int(fields[11]) + int(fields[12])) / TICK, "wall_s": wall, "mapped": mapped}
    finally:
        kafka.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=25192)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    jars_dir = ensure_jars(InfraSettings().jars_dir)
    if ensure_class_archive(jars_dir) is None:
        raise SystemExit("no class archive could be made; the log above says why")
    with tempfile.TemporaryDirectory(prefix="bench-kafka-classes-") as scratch:
        bare = Path(scratch) / "jars"
        bare.mkdir()
        for jar in jars_dir.glob("*.jar"):
            os.link(jar, bare / jar.name)
        shutil.copy(jars_dir / ".pom.sha256", bare / ".pom.sha256")
        rounds = []
        for _ in range(args.rounds):
            home = Path(scratch) / "kafka"
            with_archive = start_once(home, jars_dir, args.port, archive=True)
            without = start_once(home, bare, args.port, archive=False)
            rounds.append({"archive": with_archive, "no_archive": without})
    medians = {
        way: {key: statistics.median(r[way][key] for r in rounds) for key in ("cpu_s", "wall_s")}
        for way in ("archive", "no_archive")
    }
    ratios = {k: round(medians["archive"][k] / medians["no_archive"][k], 3) for k in ("cpu_s", "wall_s")}
    print(json.dumps({"rounds": rounds, "medians": medians, "archive_over_none": ratios}, indent=2))


if __name__ == "__main__":
    main()
