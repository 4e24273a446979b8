"""The brokers map an archive of Kafka's classes (infra/kafka_classes.py): made once per jars folder,
checked on the running JVM's own memory map, and a damaged archive or an unwritable jars folder costs
the speed-up, never the start."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from infra.kafka_classes import ensure_class_archive
from infra.kafka_jars import ARCHIVE_NAME, class_archive
from infra.kafka_local import LocalKafka
from tests.conftest import TEST_STATE_DIR
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 1300  # a broker of its own, beside the shared test broker


def maps_archive(pid: int) -> bool:
    return ARCHIVE_NAME in Path(f"/proc/{pid}/maps").read_text()


def linked_jars(jars_dir: Path, into: Path) -> Path:
    """A jars folder of its own (hard links: no copy of the jars), without the archive. The fetch's
    stamp comes too: without it, the launch would fetch the jars anew (and archive them)."""
    into.mkdir()
    for jar in jars_dir.glob("*.jar"):
        os.link(jar, into / jar.name)
    shutil.copy(jars_dir / ".pom.sha256", into / ".pom.sha256")
    return into


def broker(home: Path, jars_dir: Path) -> LocalKafka:
    return LocalKafka(home=home, jars_dir=jars_dir, port=PORT, controller_port=PORT + 1)


def test_the_shared_broker_maps_the_archive_of_its_jars(kafka_bootstrap: str, jars_dir: Path) -> None:
    assert class_archive(jars_dir).is_file()  # the session broker's launch made it, or found it
    pid = broker(TEST_STATE_DIR / "kafka", jars_dir).pid()
    assert pid is not None and maps_archive(pid)


def test_a_damaged_archive_is_ignored_and_the_broker_starts(tmp_path: Path, jars_dir: Path) -> None:
    jars = linked_jars(jars_dir, tmp_path / "jars")
    class_archive(jars).write_bytes(b"\x7fELF not a class archive" * 4096)
    kafka = broker(tmp_path / "kafka", jars)
    try:
        kafka.start(timeout_s=90)
        pid = kafka.pid()
        assert pid is not None and kafka.answers()
        assert not maps_archive(pid)  # the JVM checked it and refused it
        assert class_archive(jars).stat().st_size < 1_000_000  # left as it was: not made anew
    finally:
        kafka.stop()


def test_an_unwritable_jars_folder_gets_no_archive_and_no_error(
    tmp_path: Path, jars_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jars = linked_jars(jars_dir, tmp_path / "jars")
    jars.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(jars, os.W_OK):  # root writes anyway: take the lock's place with a folder
            (jars / f"{ARCHIVE_NAME}.lock").mkdir()
        with caplog.at_level(logging.WARNING, logger="infra.kafka_classes"):
            assert ensure_class_archive(jars) is None
        assert "could not archive Kafka's classes" in caplog.text
        assert not class_archive(jars).exists()
    finally:
        jars.chmod(stat.S_IRWXU)


def test_a_fresh_jars_folder_gets_its_archive_at_the_first_launch(tmp_path: Path, jars_dir: Path) -> None:
    jars = linked_jars(jars_dir, tmp_path / "jars")
    kafka = broker(tmp_path / "kafka", jars)
    try:
        kafka.start(timeout_s=180)  # the throwaway broker that dumps the archive comes first
        pid = kafka.pid()
        assert pid is not None and maps_archive(pid)
        assert class_archive(jars).stat().st_size > 10_000_000
        assert not list(jars.glob("*.partial")) and not list(
            Path(tempfile.gettempdir()).glob("mlops-kafka-classes-*")
        )
    finally:
        kafka.stop()


def test_a_dump_that_fails_is_not_tried_at_every_launch(
    tmp_path: Path, jars_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jars = tmp_path / "jars"
    jars.mkdir()  # no jars: the throwaway broker's JVM cannot find Kafka's main class
    shutil.copy(jars_dir / ".pom.sha256", jars / ".pom.sha256")
    with caplog.at_level(logging.WARNING, logger="infra.kafka_classes"):
        assert ensure_class_archive(jars, timeout_s=60) is None
        assert caplog.text.count("could not archive Kafka's classes") == 1
        assert ensure_class_archive(jars, timeout_s=60) is None  # at once: the marker says it failed
        assert caplog.text.count("could not archive Kafka's classes") == 1
    assert class_archive(jars).with_suffix(".failed").read_text().strip()
    assert not class_archive(jars).exists() and not list(jars.glob("*.partial"))
