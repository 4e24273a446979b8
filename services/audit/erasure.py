"""Erasing a data subject from the audit trail (crypto-shredding), at the edges: the HTTP route for ops
(`POST /erasures`), the `erase` subcommand of the CLI (`mlops audit erase SUBJECT`), and the subject
keys built from settings. Both edges call the same use case, `AuditService.erase`.

The subject id travels in the request body (or on stdin for the CLI with `-`), never in a URL, so it
stays out of access logs; answers name only the subject's keyed reference.

No `from __future__ import annotations` here: FastAPI reads the route's annotations at runtime.
"""

import argparse
import getpass
import sys
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from servicekit.auth import Principal, Role, require_roles
from servicekit.errors import error_responses
from services.audit.adapters.subject_keys import SubjectKeys, load_secret
from services.audit.handlers import AuditService
from services.audit.settings import AuditSettings

Operator = Annotated[Principal, Depends(require_roles(Role.OPS))]  # admin is admitted too


def subject_keys(settings: AuditSettings) -> SubjectKeys:
    """The keys from the configured secret; development creates the secret on first use."""
    path = settings.resolved_subject_secret_file
    return SubjectKeys(load_secret(path, create=settings.environment != "production"))


class ErasureRequest(BaseModel):
    subject_id: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The data subject's id as the events carry it (the application id).",
    )


def _service(request: Request) -> AuditService:
    audit: AuditService = request.app.state.audit
    return audit


def build_router() -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.post(
        "/erasures",
        summary="Erase a data subject: delete its key, chain an erasure row",
        responses=error_responses(400, 422),
    )
    def erase(
        body: ErasureRequest, who: Operator, audit: Annotated[AuditService, Depends(_service)]
    ) -> dict[str, Any]:
        return asdict(audit.erase(body.subject_id, requested_by=who.name))

    return router


def add_cli_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("subject", help="the subject's id (the application id); '-' reads it from stdin")
    command.add_argument("--by", help="who asks (recorded in the erasure row; default: the OS user)")


def run_cli(args: argparse.Namespace, audit: AuditService, settings: AuditSettings) -> dict[str, Any]:
    """`erase`: the CLI's store gets the subject keys first (its other commands read without them)."""
    subject = sys.stdin.readline().rstrip("\r\n") if args.subject == "-" else args.subject
    if not subject or len(subject) > 256:
        raise SystemExit("error: the subject id must be 1 to 256 characters")
    audit.store.subject_keys = subject_keys(settings)
    audit.store.migrate()  # a store last opened by an older service may not have the key table yet
    by = args.by or f"cli:{getpass.getuser()}"
    return asdict(audit.erase(subject, requested_by=by))
