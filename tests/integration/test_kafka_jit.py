"""The local broker's JVM compiles with C1 only (infra/settings.py says why), and the setting takes
C2 back: checked on the running JVM's own threads, not on the command line alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.kafka_jars import JIT_THREADS
from infra.kafka_local import LocalKafka
from infra.settings import InfraSettings
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 1200  # a broker of its own, beside the shared test broker


def compiler_threads(pid: int) -> set[str]:
    names = {(task / "comm").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir()}
    return {name for name in names if name.startswith(JIT_THREADS)}


@pytest.mark.parametrize(
    ("options", "expected"),
    [(None, {"C1 CompilerThre"}), ("", {"C1 CompilerThre", "C2 CompilerThre"})],
    ids=["default-c1-only", "empty-takes-c2-back"],
)
def test_the_brokers_jit_compilers_follow_the_setting(
    tmp_path: Path, jars_dir: Path, monkeypatch: pytest.MonkeyPatch, options: str | None, expected: set[str]
) -> None:
    if options is None:
        monkeypatch.delenv("MLOPS_KAFKA_JVM_OPTIONS", raising=False)
    else:
        monkeypatch.setenv("MLOPS_KAFKA_JVM_OPTIONS", options)
    jvm_options = InfraSettings(state_dir=tmp_path).jvm_options
    kafka = LocalKafka(
        home=tmp_path / "kafka",
        jars_dir=jars_dir,
        port=PORT,
        controller_port=PORT + 1,
        jvm_options=jvm_options,
    )
    kafka.start(timeout_s=90)
    try:
        pid = kafka.pid()
        assert pid is not None
        # HotSpot starts compiler threads as its queue needs them: wait for the kinds to show.
        deadline = time.monotonic() + 30
        while not compiler_threads(pid) >= expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert compiler_threads(pid) == expected
    finally:
        kafka.stop()
