"""Apache Kafka's jars, fetched once from Maven Central with Maven (cached by the pom's hash)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

from infra.settings import REPO_ROOT

log = logging.getLogger(__name__)

POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"


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
