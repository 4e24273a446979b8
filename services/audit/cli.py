"""Commands on the audit database, without the service (also `mlops audit ...`):

    python -m services.audit.cli verify  [--database-url URL] [--workers N] [--kafka HOST:PORT]
                                         [--checkpoint-topic T] [--trusted-key BASE64]...
    python -m services.audit.cli summary [--database-url URL]
    python -m services.audit.cli lineage PREDICTION_ID [--database-url URL]
    python -m services.audit.cli erase SUBJECT_ID|- [--database-url URL] [--by NAME]

`verify` is the same verification as `GET /verify`: the chain, the append-only guards, the signed
checkpoints and the Kafka log (default KAFKA_BOOTSTRAP_SERVERS). It exits 0 when the trail is intact,
1 when it is not, 2 when it cannot run (no database, or Kafka does not answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from servicekit.cli_args import prog
from services.audit import erasure
from services.audit.adapters.store import SqlAuditStore
from services.audit.errors import AuditError
from services.audit.handlers import AuditService
from services.audit.lineage import lineage
from services.audit.settings import AuditSettings
from services.audit.verification import TrailVerifier

INTACT, BROKEN, CANNOT_RUN = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog("python -m services.audit.cli"), description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("verify", "recompute the chain"),
        ("summary", "rows by type"),
        ("lineage", "one prediction"),
        ("erase", "crypto-shred one data subject (docs/audit.md#erasure)"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--database-url", help="SQLAlchemy URL (default: the service's own database)")
        if name == "verify":
            command.add_argument("--workers", type=_positive, default=os.cpu_count() or 1, help="processes")
            command.add_argument(
                "--kafka", "--checkpoints-from", metavar="BOOTSTRAP", help="Kafka holding the anchors"
            )
            command.add_argument("--checkpoint-topic", help="topic of the checkpoints (default: settings)")
            command.add_argument(
                "--trusted-key", action="append", default=[], metavar="BASE64", help="checkpoint public key"
            )
        if name == "lineage":
            command.add_argument("prediction_id")
        if name == "erase":
            erasure.add_cli_arguments(command)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = AuditSettings()
    url = args.database_url or settings.resolved_database_url
    try:
        store = open_store(url)
    except (AuditError, ArgumentError, SQLAlchemyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return CANNOT_RUN
    audit = AuditService(store)
    try:
        if args.command == "summary":
            return _print(audit.summary(), INTACT)
        if args.command == "lineage":
            return _print(lineage(store, args.prediction_id), INTACT)
        if args.command == "erase":
            return _print(erasure.run_cli(args, audit, settings), INTACT)
        settings = settings.model_copy(
            update={
                "checkpoint_topic": args.checkpoint_topic or settings.checkpoint_topic,
                "trusted_public_keys": [*settings.trusted_public_keys, *args.trusted_key],
            }
        )
        report = TrailVerifier.from_settings(settings, store, args.kafka, args.workers).verify()
        return _print(asdict(report), INTACT if report.intact else BROKEN)
    except AuditError as err:
        print(f"error: {err}", file=sys.stderr)
        return CANNOT_RUN
    finally:
        store.dispose()


def open_store(url: str) -> SqlAuditStore:
    """An existing audit store; refuses to create an empty database where the path is wrong."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and os.path.exists(parsed.database)):
        raise AuditError(f"no audit database at {parsed.database!r}")
    store = SqlAuditStore(url)
    if not inspect(store.reader).has_table("audit_events"):
        store.dispose()
        raise AuditError(f"{parsed.render_as_string(hide_password=True)} holds no audit_events table")
    return store


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


def _print(result: dict[str, Any], code: int) -> int:
    print(json.dumps(result, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
