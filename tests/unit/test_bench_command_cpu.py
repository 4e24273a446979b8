"""bench/command_cpu.py: the processes of a real command are found and named, its exit code is passed
through, and bad arguments get the usage, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.command_cpu import component
from infra.settings import REPO_ROOT

BURN = (
    "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\nraise SystemExit(3)"
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.command_cpu", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_child_that_burns_cpu_is_counted_and_its_exit_code_passed_through(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    script = tmp_path / "burn.py"
    script.write_text(BURN)
    # The burner runs as a grandchild, under a shell, as the services run under `mlops up`.
    done = run("--period", "0.1", "--out", str(out), "--", "sh", "-c", f"{sys.executable} {script}; exit $?")
    assert done.returncode == 3, done.stderr
    report = json.loads(out.read_text())
    assert report["exit_code"] == 3 and report["processes"] >= 2
    burners = [c for c in report["components"] if c["name"] == f"other: {Path(sys.executable).name}"]
    assert burners and burners[0]["cpu_s"] >= 0.4, report  # 0.6 s burnt, the last 0.1 s may be missed
    assert report["cpu_counted_s"] <= report["cpu_children_s"] + 0.2, report


def test_bad_arguments_get_the_usage_not_a_traceback(tmp_path: Path) -> None:
    for args in ([], ["--"], ["--period", "0", "--", "true"], ["--period", "soon", "--", "true"]):
        done = run("--out", str(tmp_path / "x.json"), *args)
        assert done.returncode == 2 and "usage:" in done.stderr and "Traceback" not in done.stderr, args


def test_command_lines_are_named_by_component() -> None:
    java = "/usr/bin/java -Xms768m -cp /x/.local/kafka-jars/* kafka.Kafka /s/kafka/server.properties"
    assert component(java) == "kafka broker"
    assert component(java.replace("/s/kafka/", "/s/kafka-cluster/node-2/")) == "kafka broker (cluster node)"
    assert component("/x/.venv/bin/python -m services.drift") == "service drift"
    assert component("/x/.venv/bin/python -m infra.cli replay features --group g") == "mlops replay"
    assert component(".venv/bin/python -m pytest -q tests/unit") == "pytest"
    compiled = "/usr/bin/java -XX:TieredStopAtLevel=1 -cp /j/programs/ab:/j/* BusAccess a b"
    assert component(compiled) == "kafka ACL tool"
    assert component("/usr/bin/java -cp /j/* /r/infra/kafka/BusAccess.java a b") == "kafka ACL tool"
    assert component("") == "other: ?"
