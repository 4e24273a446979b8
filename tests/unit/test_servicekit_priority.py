"""Stream services yield the CPU to serving: niceness of every thread and of the session's autogroup,
set in real child processes (servicekit/priority.py), and the supervisor's choice per service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import Supervisor
from servicekit import priority
from servicekit.priority import AUTOGROUP, autogroup_nice
from servicekit.settings import ServiceSettings

# A thread that runs before the call (as a BLAS pool started by an import) and one started after it.
CHILD = """
import json, os, threading
from servicekit.priority import niceness, yield_cpu
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()
yield_cpu(int(os.environ["NICE"]))
after = threading.Thread(target=stop.wait); after.start()
tids = [int(t) for t in os.listdir("/proc/self/task")]
print(json.dumps({"threads": {t: os.getpriority(os.PRIO_PROCESS, t) for t in tids}, "group": niceness()[1]}))
stop.set()
"""


def run_child(nice: int, *, own_session: bool) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO_ROOT, env={**os.environ, "NICE": str(nice)},
        start_new_session=own_session, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def own_autogroup() -> int | None:
    return autogroup_nice()


def nicer_than_now(by: int) -> int:
    """A niceness `by` above this process's own (capped at 19): `make test` runs this lane at 10
    (tests/lane.py), and `yield_cpu` never lowers a niceness."""
    return min(os.getpriority(os.PRIO_PROCESS, 0) + by, 19)


def test_a_session_leader_yields_with_every_thread_and_its_autogroup() -> None:
    nice = nicer_than_now(7)
    seen = run_child(nice, own_session=True)
    threads = dict(seen["threads"])  # type: ignore[call-overload]
    assert len(threads) == 3 and set(threads.values()) == {nice}
    if AUTOGROUP.exists():  # a kernel with autogroups: setsid gave the child a group of its own
        assert seen["group"] == nice


def test_a_process_run_from_a_shell_leaves_the_shells_autogroup_alone() -> None:
    before, nice = own_autogroup(), nicer_than_now(5)
    seen = run_child(nice, own_session=False)
    assert set(dict(seen["threads"]).values()) == {nice}  # type: ignore[call-overload]
    assert own_autogroup() == before and seen["group"] == before


@pytest.mark.parametrize(
    ("shown", "nice"),
    [
        ("/autogroup-4 nice 0\n", 0),
        ("/autogroup-91 nice 10\n", 10),
        ("/autogroup-3 nice -5\n", -5),
        ("", None),
        ("garbage\n", None),
    ],
)
def test_the_autogroup_file_is_read_and_the_root_groups_empty_one_is_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shown: str, nice: int | None
) -> None:
    # The kernel prints nothing for a process in the root group (one whose session predates any
    # setsid, as under some CI runners): that is no group to read or set, not an error.
    fake = tmp_path / "autogroup"
    fake.write_text(shown)
    monkeypatch.setattr(priority, "AUTOGROUP", fake)
    assert autogroup_nice() == nice
    assert autogroup_nice(2**22 + 1) is None  # no such process
    priority._set_autogroup(10)  # raised only when the group shows a lower nice; never raises
    assert fake.read_text() == ("10\n" if nice is not None and nice < 10 else shown)


def test_nice_zero_changes_nothing() -> None:
    seen = run_child(0, own_session=True)
    assert set(dict(seen["threads"]).values()) == {os.getpriority(os.PRIO_PROCESS, 0)}  # type: ignore[call-overload]


@pytest.mark.parametrize("value", ["-1", "20", "high"])
def test_a_bad_niceness_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_prefix="DEMO_")

    monkeypatch.setenv("DEMO_CPU_NICE", value)
    with pytest.raises(ValidationError, match="cpu_nice"):
        Settings()
    monkeypatch.setenv("MLOPS_STREAM_NICE", value)
    with pytest.raises(ValidationError, match="stream_nice"):
        InfraSettings()
    monkeypatch.delenv("MLOPS_STREAM_NICE")
    monkeypatch.setenv("MLOPS_TRAILING_NICE", value)
    with pytest.raises(ValidationError, match="trailing_nice"):
        InfraSettings()


def test_the_supervisor_puts_serving_first_and_a_services_own_setting_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.endswith("_CPU_NICE")]:
        monkeypatch.delenv(name)
    supervisor = Supervisor(InfraSettings(state_dir=tmp_path, stream_nice=12, trailing_nice=17))
    keys = tmp_path / "keys.json"
    assert supervisor.service_env("serving", keys)["SERVING_CPU_NICE"] == "0"
    for name in ("ingest", "features"):
        assert supervisor.service_env(name, keys)[f"{name.upper()}_CPU_NICE"] == "12"
    for name in ("training", "drift", "explain", "audit", "annotation"):
        assert supervisor.service_env(name, keys)[f"{name.upper()}_CPU_NICE"] == "17"
    monkeypatch.setenv("AUDIT_CPU_NICE", "3")
    assert supervisor.service_env("audit", keys)["AUDIT_CPU_NICE"] == "3"
    assert (
        Supervisor(InfraSettings(state_dir=tmp_path, stream_nice=0, trailing_nice=0)).service_env(
            "drift", keys
        )["DRIFT_CPU_NICE"]
        == "0"
    )


def test_the_trailing_services_never_run_ahead_of_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.endswith("_CPU_NICE")]:
        monkeypatch.delenv(name)
    keys = tmp_path / "keys.json"
    below = Supervisor(InfraSettings(state_dir=tmp_path, stream_nice=10, trailing_nice=4))
    assert below.service_env("audit", keys)["AUDIT_CPU_NICE"] == "10"
    alike = Supervisor(InfraSettings(state_dir=tmp_path, stream_nice=0, trailing_nice=0))
    assert {alike.cpu_nice(name) for name in ("serving", "ingest", "features", "audit", "drift")} == {0}
    default = InfraSettings(state_dir=tmp_path)
    assert default.trailing_nice > default.stream_nice > 0
