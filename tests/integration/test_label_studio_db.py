"""A new state folder's Label Studio database comes from the migrated template (infra/label_studio_db.py),
with the real Label Studio of scripts/install-label-studio.sh: the template carries no account and no
token (read with raw SQL), two folders seeded from it each get their own admin whose token the other's
server refuses, and an existing database is never overwritten by the template."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from infra.label_studio import QUIET_SETTINGS, LocalLabelStudio, auth_header, write_credentials
from infra.label_studio_db import migrated_template, seed_database, usable
from infra.processes import wait_for_exit
from infra.settings import InfraSettings
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 720


def rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as db:
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return count


@pytest.fixture(scope="module")
def template() -> Path:
    venv = LocalLabelStudio(InfraSettings()).venv
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"Label Studio is not installed in {venv}: run scripts/install-label-studio.sh")
    made = migrated_template(venv, QUIET_SETTINGS)
    assert made is not None and made.parent == venv / "migrated-db"
    return made


def test_the_template_is_migrated_and_holds_no_account_or_token(template: Path) -> None:
    with sqlite3.connect(template) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        applied = db.execute("SELECT COUNT(*) FROM django_migrations").fetchone()[0]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"htx_user", "authtoken_token", "project", "task"} <= tables
    assert applied > 100  # Label Studio's whole history of migrations, not an empty file
    assert rows(template, "htx_user") == 0 and rows(template, "authtoken_token") == 0
    assert mode == "delete" and not Path(f"{template}-wal").exists()  # one file, copied whole
    assert usable(template)


def test_an_existing_database_is_never_replaced_by_the_template(tmp_path: Path, template: Path) -> None:
    database = tmp_path / "label_studio.sqlite3"
    database.write_bytes(b"an operator's data")
    venv = template.parent.parent
    assert seed_database(venv, database, QUIET_SETTINGS) is False
    assert database.read_bytes() == b"an operator's data"
    assert seed_database(venv, tmp_path / "new" / "label_studio.sqlite3", QUIET_SETTINGS) is True
    assert (tmp_path / "new" / "label_studio.sqlite3").stat().st_mode & 0o077 == 0
    assert not list((tmp_path / "new").glob(".*seeding"))


def start(state: Path) -> tuple[InfraSettings, int]:
    settings = InfraSettings(state_dir=state, label_studio_port=PORT)
    write_credentials(settings.secrets_dir)
    return settings, LocalLabelStudio(settings).start()


def stop(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)
    wait_for_exit(pid, 30)


def test_two_folders_seeded_from_it_each_get_their_own_admin(tmp_path: Path, template: Path) -> None:
    first, pid = start(tmp_path / "first")
    url = LocalLabelStudio(first).url
    try:
        assert (
            httpx.get(f"{url}/api/projects/", headers=auth_header(first.secrets_dir), timeout=30).status_code
            == 200
        )
    finally:
        stop(pid)
    second, pid = start(tmp_path / "second")
    try:
        mine = httpx.get(f"{url}/api/projects/", headers=auth_header(second.secrets_dir), timeout=30)
        theirs = httpx.get(f"{url}/api/projects/", headers=auth_header(first.secrets_dir), timeout=30)
        assert (mine.status_code, theirs.status_code) == (200, 401)
    finally:
        stop(pid)
    for settings in (first, second):  # each folder's database holds its own admin, the template none
        assert rows(LocalLabelStudio(settings).database, "htx_user") == 1
    assert rows(template, "htx_user") == 0


def a_venv(root: Path, label_studio: str) -> Path:
    """A venv as install-label-studio.sh leaves it, whose `label-studio` is the given shell script."""
    (root / "lib/python3.11/site-packages/label_studio-9.9.9.dist-info").mkdir(parents=True)
    binary = root / "bin" / "label-studio"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\n{label_studio}\n")
    binary.chmod(0o755)
    return root


def test_a_damaged_template_is_dropped_and_the_start_migrates_as_before(tmp_path: Path) -> None:
    """Garbage where the template was (a disk, a hand): never copied into a state folder. It is
    removed, made again, and when that fails too (here: a Label Studio that exits 1) the start is left
    to Label Studio's own migrations."""
    venv = a_venv(tmp_path / "venv", "exit 1")
    template = venv / "migrated-db" / "9.9.9.sqlite3"
    template.parent.mkdir()
    template.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    assert not usable(template)
    database = tmp_path / "state" / "label_studio.sqlite3"
    assert seed_database(venv, database, QUIET_SETTINGS) is False
    assert not database.exists() and not template.exists()
    assert list((venv / "migrated-db").iterdir()) == []  # no scratch folder left behind
