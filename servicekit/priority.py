"""A service that works the streams yields the CPU to one that answers requests.

On a machine the whole platform shares (`mlops up`), every consumer batch competes for the same cores
as serving's requests, and a prediction then waits behind a Presidio batch or an audit seal: serving's
p99 was 127-437 ms while ingesting 1,000 records/s, against about 10 ms idle (docs/benchmarks.md).
The stream services run at a lower priority instead (`<PREFIX>_CPU_NICE`, set by the supervisor from
`MLOPS_STREAM_NICE`), as a cluster gives serving its own CPU requests: they still get every cycle
serving leaves, so the stream's throughput is what remains after serving, not less. The services that
trail the stream (audit, drift, explain, training, annotation; `MLOPS_TRAILING_NICE`) yield in turn to
ingest and features, which bring a record's features online: their lag breaks no promise and is
caught up when the load drops.

Two kernel details decide whether a nice value does anything:
- it belongs to one thread, and a thread takes its creator's: the threads already running (BLAS pools
  started by an import) are set one by one, and those started later inherit it;
- with autogroup scheduling (the default of desktop and many server kernels), each session is its own
  group and niceness only orders threads *within* a group. The supervisor starts each service in its
  own session, so the group's own nice (/proc/self/autogroup) is what orders services against each
  other. It is only written by a session leader, so a service run from a shell never renices the shell.
  (The kernel applies autogroups only to tasks in the root CPU cgroup; in a container or under a
  systemd slice with the cpu controller, the threads' own niceness is what counts, and is set too.)

Niceness is a weight, not a strict order: at 10 against serving's 0, a stream service gets about a
tenth of a contended core, and Kafka, PostgreSQL and MLflow stay at 0.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

AUTOGROUP = Path("/proc/self/autogroup")
TASKS = Path("/proc/self/task")
_AUTOGROUP_LINE = re.compile(r"nice\s+(-?\d+)")


def yield_cpu(nice: int) -> None:
    """Run this process at niceness `nice` at least (0-19; 0 leaves it as it is): a thread or group
    already nicer keeps its own (as root, setting a lower value would raise its priority). Logs, never
    raises: a service that cannot lower its priority still works."""
    if nice <= 0:
        return
    failed = 0
    for tid in _threads():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
        except OSError as exc:
            failed += 1
            log.warning("could not lower the CPU priority of thread %s: %s", tid, exc)
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        _set_autogroup(nice)
    if not failed:
        log.info("running at CPU niceness %d", nice)


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(TASKS)]
    except OSError:  # no /proc: the calling thread only
        return [0]


def _set_autogroup(nice: int) -> None:
    # Writes to any autogroup are rate-limited kernel-wide (one per 100 ms without CAP_SYS_ADMIN), and
    # the supervisor starts every service at once: wait out EAGAIN for a few seconds.
    group = niceness()[1]
    if group is None or group >= nice:  # None: the root group, whose weight is not ours to set
        return
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
    return os.getpriority(os.PRIO_PROCESS, 0), autogroup_nice()


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The nice of a process's autogroup (`/proc/<pid>/autogroup` reads "/autogroup-N nice K"); None
    on a kernel without autogroups, and for a process in the root group, which the kernel shows as an
    empty file (a process whose session began before any setsid, as under some CI runners) and whose
    weight cannot be set."""
    path = AUTOGROUP if pid == "self" else Path(f"/proc/{pid}/autogroup")
    try:
        found = _AUTOGROUP_LINE.search(path.read_text())
    except OSError:  # no autogroups, or the process is gone
        return None
    return int(found.group(1)) if found else None
