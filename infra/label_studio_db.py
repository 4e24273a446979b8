"""A fresh state folder's Label Studio database, copied from a migrated one instead of migrated again.

Label Studio migrates its SQLite database on the first start of a state folder: 74 s of a 2-core
machine's CPU against 7.5 s for a start on a migrated database (2026-12-07). Every new state folder
(each `mlops up` in a new place, each test stack) paid it again. So the migrations run once per
installed version, into a template beside its venv (`<venv>/migrated-db/<version>.sqlite3`), and a
state folder without a database starts from a copy of it.

The template holds the schema and what the migrations themselves insert, and nothing of any state
folder: it is made by `label-studio version` (which migrates, then prints its version and exits) in a
scratch folder, with no admin account in its environment. Each state folder's admin and token are
created by its own first start, as before (infra/label_studio.py). The copy goes through SQLite's
backup API, so a write-ahead log the migrations left beside the file is in it, and lands under its
final name by rename: a start never sees half a database. When the template cannot be made, the
start migrates as it always did.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import tempfile
from pathlib import Path

MIGRATE_TIMEOUT_S = 600.0
# What would hand the scratch database an account: Label Studio creates one when both are set.
ACCOUNT_VARIABLES = ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "USERNAME", "PASSWORD")


def installed_version(venv: Path) -> str | None:
    """`1.23.2` from the venv's `label_studio-1.23.2.dist-info`, or None when it is not there."""
    for info in sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return info.name.removeprefix("label_studio-").removesuffix(".dist-info")
    return None


def seed_database(venv: Path, database: Path, quiet_env: dict[str, str]) -> bool:
    """Copy the migrated template to `database` when it does not exist yet; True when copied."""
    if database.exists():
        return False
    template = migrated_template(venv, quiet_env)
    if template is None:
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    partial = database.with_name(f".{database.name}.{os.getpid()}.seeding")
    backup(template, partial)
    os.chmod(partial, 0o600)
    os.replace(partial, database)
    return True


def migrated_template(venv: Path, quiet_env: dict[str, str]) -> Path | None:
    """The template of the installed version, made now if missing; None if it cannot be made."""
    version = installed_version(venv)
    binary = venv / "bin" / "label-studio"
    if version is None or not binary.exists():
        return None
    template = venv / "migrated-db" / f"{version}.sqlite3"
    if template.exists():
        if usable(template):
            return template
        template.unlink(missing_ok=True)  # damaged by hand or by a disk: made again below
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent) as scratch:
        database = Path(scratch) / "label_studio.sqlite3"
        env = {k: v for k, v in os.environ.items() if k not in ACCOUNT_VARIABLES}
        env |= quiet_env | {"LABEL_STUDIO_BASE_DATA_DIR": scratch, "SECRET_KEY": secrets.token_urlsafe(40)}
        command = [str(binary), "version", f"--database={database}", f"--data-dir={scratch}"]
        try:  # a session of its own, as the server's (infra/label_studio.py): its own scheduling group,
            # not the caller's (a test lane at a low priority starved it past its timeout)
            done = subprocess.run(
                command, cwd=scratch, env=env, capture_output=True, timeout=MIGRATE_TIMEOUT_S, check=False,
                start_new_session=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0 or not database.exists():
            return None
        made = Path(scratch) / "template.sqlite3"
        backup(database, made)
        os.replace(made, template)  # two makers at once: either copy is the same schema
    return template


def usable(template: Path) -> bool:
    """A whole SQLite file with Label Studio's migrations recorded in it."""
    try:
        with sqlite3.connect(f"file:{template}?mode=ro", uri=True) as db:
            intact = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            applied: int = db.execute("SELECT COUNT(*) FROM django_migrations").fetchone()[0]
        db.close()
    except sqlite3.DatabaseError:
        return False
    return intact and applied > 0


def backup(source: Path, target: Path) -> None:
    """`source` whole (its write-ahead log included) into a new single file `target`."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one file, whatever mode the source was in
    src.close()
    dst.close()
