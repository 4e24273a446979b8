"""A service that works the streams yields the CPU to one that answers requests.

On a machine the whole platform shares (`mlops up`), every consumer batch competes for the same cores
as serving's requests, and a prediction then waits behind a Presidio batch or an audit seal: serving's
p99 was 127-437 ms while ingesting 1,000 records/s, against about 10 ms idle (docs/benchmarks.md).
The stream services run at a lower priority instead (`<PREFIX>_CPU_NICE`, set by the supervisor from
`MLOPS_STREAM_NICE`), as a cluster gives serving its own CPU requests: they still get every cycle
serving leaves, so the stream's throughput is what remains after serving, not less.

Two kernel details decide whether a nice value does anything:
- it belongs to one thread, and a thread takes its creator's: the threads already running (BLAS pools
  started by an import) are set one by one, and those started later inherit it;
- with autogroup scheduling (the default of desktop and many server kernels), each session is its own
  group and niceness only orders threads *within* a group. The supervisor starts each service in its
  own session, so the group's own nice (/proc/self/autogroup) is what orders services against each
  other. It is only written by a session leader, so a service run from a shell never renices the shell.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")
TASKS = Path("/proc/self/task")


def yield_cpu(nice: int) -> None:
    """Run this process at niceness `nice` (0-19; 0 leaves it as it is). Logs, never raises: a service
    that cannot lower its priority still works."""
    if nice <= 0:
        return
    for tid in _threads():
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:  # a thread that ended meanwhile
            log.debug("thread %s: %s", tid, exc)
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        _set_autogroup(nice)
    log.info("running at CPU niceness %d", nice)


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(TASKS)]
    except OSError:  # no /proc: the calling thread only
        return [0]


def _set_autogroup(nice: int) -> None:
    # Writes to any autogroup are rate-limited kernel-wide (one per 100 ms without CAP_SYS_ADMIN), and
    # the supervisor starts every service at once: wait out EAGAIN for a few seconds.
    for _ in range(50):
        try:
            AUTOGROUP.write_text(f"{nice}\n")
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                log.warning("could not set the autogroup's niceness: %s", exc)
                return
            time.sleep(0.1)
    log.warning("could not set the autogroup's niceness: busy")


def niceness() -> tuple[int, int | None]:
    """(this thread's nice, its autogroup's nice or None without autogroups): for tests and status."""
    group = None
    if AUTOGROUP.exists():
        group = int(AUTOGROUP.read_text().split("nice")[-1])
    return os.getpriority(os.PRIO_PROCESS, 0), group
