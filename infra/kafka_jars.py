"""Apache Kafka's jars, fetched once from Maven Central with Maven (cached by the pom's hash), and the
Java command lines that run them."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from infra.settings import DEFAULT_KAFKA_JVM_OPTIONS, REPO_ROOT

log = logging.getLogger(__name__)

POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "infra" / "kafka" / "log4j2.properties"


class KafkaInfraError(RuntimeError):
    """The local broker could not be fetched, formatted, started or stopped."""


def ensure_jars(jars_dir: Path) -> Path:
    """Copy Kafka and its runtime dependencies from Maven Central into `jars_dir` (cached by pom hash)."""
    stamp = jars_dir / ".pom.sha256"
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == pom_hash:
        return jars_dir
    if shutil.which("mvn") is None:
        raise KafkaInfraError("Maven (mvn) is needed to fetch Apache Kafka from Maven Central")
    staging = jars_dir.with_name(jars_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    log.info("fetching Apache Kafka jars from Maven Central into %s", jars_dir)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaInfraError(
            f"mvn failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    # Swap in the complete folder only at the end, so an interrupted fetch is never mistaken for a cache.
    shutil.rmtree(jars_dir, ignore_errors=True)
    staging.rename(jars_dir)
    stamp.write_text(pom_hash)
    return jars_dir


def java() -> str:
    """The `java` to run Kafka with: $JAVA_HOME's, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    found = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    if not found:
        raise KafkaInfraError("Java 17 (java) is needed to run Apache Kafka")
    return str(found)


DEFAULT_JVM_OPTIONS: tuple[str, ...] = tuple(DEFAULT_KAFKA_JVM_OPTIONS.split())  # why: infra/settings.py
JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")  # HotSpot's compiler threads, as /proc names them


ARCHIVE_NAME = "kafka-classes"  # infra/kafka_classes.py makes <jars>/kafka-classes-<JDK>.jsa


def class_archive(jars_dir: Path) -> Path:
    """Where the jars' class archive for this JDK is: named by the JDK's `release` file (its version
    and build), so a JDK updated or swapped makes an archive of its own instead of keeping one the
    JVM ignores."""
    binary = Path(java()).resolve()
    release = binary.parent.parent / "release"
    identity = release.read_bytes() if release.is_file() else f"{binary}:{binary.stat().st_mtime_ns}".encode()
    return jars_dir / f"{ARCHIVE_NAME}-{hashlib.sha256(identity).hexdigest()[:12]}.jsa"


def class_archive_options(jars_dir: Path, options: Sequence[str]) -> list[str]:
    """Map the jars' class archive, if there is one and these options do not dump one."""
    archive = class_archive(jars_dir)
    dumping = any(option.startswith("-XX:ArchiveClassesAtExit") for option in options)
    return [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() and not dumping else []


def java_command(
    jars_dir: Path,
    logs_dir: Path,
    main_class: str,
    *args: str,
    heap: str | None = None,
    options: Sequence[str] = DEFAULT_JVM_OPTIONS,
) -> list[str]:
    """`main_class` of the jars in `jars_dir`, logging into `logs_dir`; a server gets a fixed `heap`.
    `options` go to the JVM after the kit's own, so they can override them."""
    server = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"] if heap else []
    return [
        java(),
        *server,
        *class_archive_options(jars_dir, options),
        *options,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{jars_dir}/*",
        main_class,
        *args,
    ]


def source_program(java_path: str, jars_dir: Path, source: Path) -> list[str]:
    """The command that runs the one-file Java program `source` on the jars' classpath (its arguments
    follow). `java File.java` compiles the file in memory on every run: 1.7 s of CPU (3.1 with C2)
    before the program's first line (`bench/bus_access_tool.py`). So it is compiled once with `javac`,
    into `jars_dir/programs/<digest of the source and the javac>`, and the class is run from there; a
    machine with a JRE only, or a failed compile, runs the source as before. Short-lived, so C1 only."""
    classpath = f"{jars_dir}/*"
    javac = Path(java_path).resolve().with_name("javac")
    if not javac.is_file():
        return [java_path, *DEFAULT_JVM_OPTIONS, "-cp", classpath, str(source)]
    digest = hashlib.sha256(source.read_bytes() + str(javac).encode()).hexdigest()[:16]
    classes = jars_dir / "programs" / digest
    if not (classes / f"{source.stem}.class").is_file():
        staging = classes.with_name(f"{digest}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        javac_run = [str(javac), "-nowarn", "-J-XX:TieredStopAtLevel=1", "-cp", classpath, "-d", str(staging)]
        compiled = subprocess.run(
            [*javac_run, str(source)], capture_output=True, text=True, check=False, timeout=300
        )
        if compiled.returncode != 0:
            log.warning("javac %s failed, running it as source: %s", source.name, compiled.stderr[-1000:])
            shutil.rmtree(staging, ignore_errors=True)
            return [java_path, *DEFAULT_JVM_OPTIONS, "-cp", classpath, str(source)]
        try:  # another process (the other test lane) may have compiled the same source meanwhile
            staging.rename(classes)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return [java_path, *DEFAULT_JVM_OPTIONS, "-cp", f"{classes}{os.pathsep}{classpath}", source.stem]
