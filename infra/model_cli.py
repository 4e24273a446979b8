"""`mlops model ...`: ops moves of the champion, through the training service's API (so they are
events in the audit trail, never a hand edit of the MLflow alias).

    mlops model rollback [--to N] --reason "..." [--model NAME] [--url URL] [--api-key KEY]
    mlops model canary --version N --share S --reason "..."     (S in (0, 0.5])
    mlops model canary --end --reason "..."

The request carries one idempotency key per invocation; a failed connection or a 503 is retried with
the same key, so the champion never moves twice for one command. Prints the answer as JSON. Exit
codes: 0 done (or already done by this command), 1 refused by the service (the reason and its code on
one line), 2 bad flags or the service unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import httpx

from infra.monitoring import PrometheusError, ops_key
from infra.settings import InfraSettings
from infra.supervisor import service_port
from servicekit.cli_args import positive_float, positive_int

DONE, REFUSED, CANNOT_RUN = 0, 1, 2
ATTEMPTS = 3


def reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must say why (not blank)")
    if len(text) > 500:
        raise argparse.ArgumentTypeError(f"at most 500 characters, got {len(text)}")
    return text.strip()


def share(text: str) -> float:
    value = positive_float(text)
    if value > 0.5:
        raise argparse.ArgumentTypeError(f"at most 0.5, got {text}")
    return value


def add_parser(sub: Any) -> None:
    model = sub.add_parser("model", help="ops moves of the champion (mlops model rollback --help)")
    actions = model.add_subparsers(dest="action", required=True)
    rollback = actions.add_parser("rollback", help="move the champion back to an earlier champion")
    rollback.add_argument("--to", type=positive_int, help="version (default: the champion before)")
    rollback.add_argument("--reason", type=reason, required=True, help="why (kept in the event and audit)")
    canary = actions.add_parser("canary", help="start, change or end a canary (a share of live traffic)")
    canary.add_argument("--version", type=positive_int, help="version to send traffic to (not with --end)")
    canary.add_argument("--share", type=share, help="share of live traffic, in (0, 0.5]")
    canary.add_argument("--end", action="store_true", help="end the running canary")
    canary.add_argument("--reason", type=reason, required=True, help="why (kept in the event and audit)")
    for parser in (rollback, canary):
        parser.add_argument("--model", help="registered model (default: MLOPS_MODEL_NAME or credit-risk)")
        parser.add_argument("--url", help="training service (default: the local stack's)")
        parser.add_argument("--api-key", help="an ops key (default: the local stack's development key)")
        parser.add_argument("--timeout", type=positive_int, default=30, help="seconds per attempt")


def cmd_model(settings: InfraSettings, args: argparse.Namespace) -> int:
    url = args.url or f"http://127.0.0.1:{service_port(settings, 'training')}"
    model = args.model or settings.model_name
    try:
        key = args.api_key or ops_key(settings.secrets_dir / "api-keys.json")
    except (OSError, ValueError, PrometheusError):
        print("error: no --api-key and no development ops key (run `mlops up` first)", file=sys.stderr)
        return CANNOT_RUN
    headers = {"X-API-Key": key, "Idempotency-Key": f"cli-{uuid.uuid4()}"}
    if args.action == "canary":
        return canary(args, f"{url}/models/{model}/canary", headers)
    body: dict[str, Any] = {"reason": args.reason} | ({"to_version": args.to} if args.to else {})
    return send(f"{url}/models/{model}/rollback", body, headers, args.timeout)


def canary(args: argparse.Namespace, url: str, headers: dict[str, str]) -> int:
    if args.end and (args.version or args.share):
        print("error: --end takes no --version or --share", file=sys.stderr)
        return CANNOT_RUN
    if args.end:
        return send(f"{url}/end", {"reason": args.reason}, headers, args.timeout)
    if not (args.version and args.share):
        print("error: a canary needs --version and --share (or --end)", file=sys.stderr)
        return CANNOT_RUN
    body = {"version": args.version, "share": args.share, "reason": args.reason}
    return send(url, body, headers, args.timeout)  # asking again for the running canary changes nothing


def send(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> int:
    """POST with retries on the same idempotency key; one line on stdout or stderr."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            if attempt == ATTEMPTS:
                print(
                    f"error: the training service at {url} did not answer ({type(exc).__name__})",
                    file=sys.stderr,
                )
                return CANNOT_RUN
        else:
            if response.status_code != 503 or attempt == ATTEMPTS:
                return _report(response)
        time.sleep(attempt)
    return CANNOT_RUN  # not reached


def _report(response: httpx.Response) -> int:
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:200], "code": "unreadable"}
    if response.status_code == 200:
        print(json.dumps(answer))
        return DONE
    print(
        f"error: {answer.get('detail')} ({answer.get('code')}, HTTP {response.status_code})", file=sys.stderr
    )
    return REFUSED if response.status_code < 500 else CANNOT_RUN
