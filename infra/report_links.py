"""`mlops reports`: signed browser links to the drift service's Evidently reports.

The running drift service signs them (GET /reports/links, with the development ops key `mlops up`
wrote); the CLI never reads the link secret. It prints one URL to paste into a browser: the index
page of the reports, or with `--report ID` that report's page. The links expire (default 15 min).
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from rich.console import Console

from infra.monitoring import PrometheusError, ops_key
from infra.settings import InfraSettings
from infra.supervisor import service_port

if TYPE_CHECKING:
    import httpx

console = Console(stderr=True)
REPORT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ReportLinksError(Exception):
    """Why no link could be had, in one line for a person."""


def report_links(
    settings: InfraSettings, report_id: str | None = None, ttl_s: int | None = None, timeout_s: float = 10.0
) -> dict[str, Any]:
    """The drift service's answer: `index`, `expires_at` and, with `report_id`, `report`."""
    import httpx  # not at import: every `mlops` command imports this module

    keys = settings.secrets_dir / "api-keys.json"
    try:
        key = ops_key(keys)
    except (OSError, ValueError, KeyError, PrometheusError):
        raise ReportLinksError(f"no development ops key in {keys}; start the stack with `mlops up`") from None
    base = f"http://127.0.0.1:{service_port(settings, 'drift')}"
    params: dict[str, str | int] = {"report": report_id} if report_id else {}
    if ttl_s is not None:
        params["ttl_s"] = ttl_s
    try:
        response = httpx.get(
            f"{base}/reports/links", params=params, headers={"X-API-Key": key}, timeout=timeout_s
        )
    except httpx.HTTPError as err:
        raise ReportLinksError(
            f"the drift service does not answer at {base} ({type(err).__name__}); is it up? (`mlops status`)"
        ) from None
    if response.status_code != 200:
        raise ReportLinksError(f"the drift service answered {response.status_code}: {_detail(response)}")
    body: dict[str, Any] = response.json()
    return body


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200].replace("\n", " ")


def cmd_reports(settings: InfraSettings, args: argparse.Namespace) -> int:
    """Print the link (stdout, alone, so it can be piped) and until when it opens (stderr)."""
    try:
        links = report_links(settings, args.report, args.ttl)
    except ReportLinksError as err:
        console.print(f"[red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 1
    console.print(f"open in a browser until {links['expires_at']}:", highlight=False, soft_wrap=True)
    print(links["report"] if args.report else links["index"], flush=True)
    return 0


def report_id(text: str) -> str:
    """argparse type of `--report`: a report id, or a one-line usage error."""
    if not REPORT_ID.match(text):
        raise argparse.ArgumentTypeError(f"not a report id (a lowercase UUID): {text!r}")
    return text
