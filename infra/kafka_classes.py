"""A class-data-sharing archive of the broker's classes (the JDK's AppCDS), made once per jars and JDK.

A broker spends most of its start loading, verifying and linking Kafka's classes from the jars: 5.0 s
of CPU to ready, of which 2.8 s remain when the classes come mapped from an archive (`mlops up`'s
broker is ready about 2 s sooner; bench/kafka_class_archive.py). The archive is dumped by a throwaway
broker, started once and stopped, in a temporary folder on free ports, the first time a broker is
launched from these jars with this JDK (a fetch of new jars replaces the folder, and so the archive;
another JDK gets one of its own). Every Kafka JVM of those jars then maps it (infra/kafka_jars.py
`java_command`). The JVM checks an archive against the classpath and itself and ignores one that
does not fit, so a damaged archive costs the time, not the start. Anything that goes wrong here is
logged and the brokers run without it; a dump that failed leaves `<archive>.failed` with the reason,
and is not tried again at every launch (delete that file to try again).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from pathlib import Path

from infra.kafka_jars import ARCHIVE_NAME, DEFAULT_JVM_OPTIONS, class_archive
from infra.processes import free_port

log = logging.getLogger(__name__)


def ensure_class_archive(jars_dir: Path, timeout_s: float = 120.0) -> Path | None:
    """The archive of `jars_dir`'s broker classes, dumped now if missing; None if it could not be."""
    archive = class_archive(jars_dir)
    failed = archive.with_suffix(".failed")
    if archive.is_file():
        return archive
    if failed.exists():  # a throwaway broker that failed once (up to its timeout) would fail again
        return None
    try:
        with open(jars_dir / f"{ARCHIVE_NAME}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other test lane, or a second `mlops up`, waits here
            if not archive.is_file():
                partial = jars_dir / f"{ARCHIVE_NAME}.{os.getpid()}.partial"
                try:
                    dump(jars_dir, partial, timeout_s)
                    partial.rename(archive)  # a dump cut short is refused by the JVM, as a damaged one
                finally:
                    partial.unlink(missing_ok=True)
                for other in jars_dir.glob(f"{ARCHIVE_NAME}-*.jsa"):  # another JDK's: 50 MB each
                    if other != archive:
                        other.unlink(missing_ok=True)
                log.info("Kafka's classes archived for faster starts: %s", archive)
    except Exception as error:  # an optimisation: never the reason a broker does not start
        log.warning("could not archive Kafka's classes (%s); brokers start without one", error)
        with contextlib.suppress(OSError):
            failed.write_text(f"{error}\n")
        return None
    return archive


def dump(jars_dir: Path, partial: Path, timeout_s: float) -> None:
    from infra.kafka_local import LocalKafka  # here: LocalKafka calls ensure_class_archive

    with tempfile.TemporaryDirectory(prefix="mlops-kafka-classes-") as home:
        port = free_port()
        broker = LocalKafka(
            home=Path(home), jars_dir=jars_dir, port=port, controller_port=free_port(), heap="256m",
            jvm_options=(*DEFAULT_JVM_OPTIONS, f"-XX:ArchiveClassesAtExit={partial}"), class_archive=False,
        )  # fmt: skip
        try:
            broker.start(timeout_s)
        finally:
            broker.stop()  # the JVM writes the archive as it exits
