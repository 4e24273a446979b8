"""tests/lane.py, which runs the unit and integration lane of `make test` in the machine's background."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

LANE = [sys.executable, "-m", "tests.lane"]
REPORT = "import json, os; print(json.dumps([os.getsid(0), os.getpid(), os.getpriority(os.PRIO_PROCESS, 0)]))"


def test_the_command_runs_in_a_session_of_its_own_at_the_given_niceness() -> None:
    done = subprocess.run(
        [*LANE, "7", sys.executable, "-c", REPORT], capture_output=True, text=True, check=True
    )
    sid, pid, nice = json.loads(done.stdout)
    assert sid == pid != os.getsid(0)  # a session leader: with autogroups, a scheduling group of its own
    assert nice == max(7, os.getpriority(os.PRIO_PROCESS, 0))


def test_the_commands_exit_code_and_death_by_signal_come_back_as_a_shell_says() -> None:
    assert subprocess.run([*LANE, "3", sys.executable, "-c", "raise SystemExit(5)"]).returncode == 5
    killed = subprocess.run([*LANE, "3", sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
    assert killed.returncode == 128 + signal.SIGKILL


def test_an_interrupt_of_the_lane_reaches_the_command_in_its_other_session() -> None:
    sleeper = "import time; print('up', flush=True); time.sleep(60)"
    lane = subprocess.Popen([*LANE, "3", sys.executable, "-c", sleeper], stdout=subprocess.PIPE, text=True)
    assert lane.stdout is not None and lane.stdout.readline() == "up\n"
    lane.send_signal(signal.SIGINT)  # as a Ctrl-C reaches the script's process group, not the new session
    assert lane.wait(timeout=20) == 130  # Python's KeyboardInterrupt exit: the command got the signal


def test_garbage_arguments_get_the_usage_not_a_traceback() -> None:
    for argv in ([], ["ten", "true"], ["5"], ["-3", "true"], ["20", "true"]):
        done = subprocess.run([*LANE, *argv], capture_output=True, text=True)
        assert done.returncode == 1 and "usage: python -m tests.lane NICE COMMAND" in done.stderr, argv
        assert "Traceback" not in done.stderr
    missing = subprocess.run([*LANE, "5", "/no/such/command"], capture_output=True, text=True)
    assert missing.returncode == 127 and "cannot run /no/such/command" in missing.stderr
    assert "Traceback" not in missing.stderr
