"""Run a test lane in the background of the machine: `python -m tests.lane NICE COMMAND...` starts
COMMAND in a session of its own (so, with autogroup scheduling, a scheduling group of its own) at CPU
niceness NICE, and exits with its code.

Why: `scripts/run-tests.sh` runs two lanes at once on two cores. The end-to-end lane's stacks run as
`mlops up` starts them, with their stream services at nice 10 and training, drift and the audit at 15
(servicekit/priority.py), each in a session and so a scheduling group of its own. Beside them, the
unit and integration lane's pytest ran at nice 0 in the script's group, with 9 (against nice 10) to
28 (against 15) times the weight of each of those services on a contended core: the demo's training,
at 15, took 224 s for a retrain that takes 11 s alone, while the demo kept streaming (and spending CPU)
until the loop closed. With this lane at the stream services' priority, an end-to-end stack sees the
machine as a user's does.

The lane's own stacks are unaffected where autogroups schedule (the kernel's default, for tasks in the
root CPU cgroup): the supervisor starts each of their services in a session of its own, whose group
starts at 0 and takes the service's niceness. Their threads inherit the lane's 10, which only orders
them within their own group. Without autogroups (a container with its own CPU cgroup), the lane's
niceness is a floor for its children's too.
"""

from __future__ import annotations

import os
import signal
import sys

from servicekit.priority import yield_cpu


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) > 19:  # a niceness the kernel takes whole
        sys.exit("usage: python -m tests.lane NICE COMMAND [ARG...]  (NICE: 0-19)")
    nice, command = int(argv[0]), argv[1:]
    pid = os.fork()
    if pid == 0:  # the child never returns into this code: it becomes COMMAND or exits
        try:
            os.setsid()  # a session leader: its autogroup is its own to renice
            yield_cpu(nice)  # the threads (and children) take it; so does the new autogroup
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"tests.lane: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        finally:
            os._exit(127)  # as a shell says for a command it cannot find

    # The parent stays in the caller's session and process group, so a Ctrl-C or a kill of it reaches
    # the lane, which a new session no longer gets from the terminal.
    def forward(signum: int, _frame: object) -> None:
        os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    _, status = os.waitpid(pid, 0)  # retried by Python across the forwarded signals (PEP 475)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)  # killed by signal N: 128 + N, as a shell says


if __name__ == "__main__":
    main(sys.argv[1:])
