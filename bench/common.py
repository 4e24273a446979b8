"""What the benchmarks share: the broker they measure against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.kafka_local import LocalKafka
from infra.settings import InfraSettings


@contextmanager
def bench_kafka(bootstrap: str | None, home: Path, port: int) -> Iterator[str]:
    """`bootstrap` when given; else a private LocalKafka on `port` (controller `port + 1`) in `home`,
    stopped afterwards, so a benchmark never disturbs a dev stack or the test broker."""
    if bootstrap:
        yield bootstrap
        return
    kafka = LocalKafka(home, InfraSettings().jars_dir, port=port, controller_port=port + 1)
    kafka.start(timeout_s=180)
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()
