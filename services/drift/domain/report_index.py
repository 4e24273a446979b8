"""The reports' index page for a browser: one row per report, newest first, with its time, trigger,
a summary line and a link to its HTML. Pure: the caller passes the summaries and how to link a report.
Every value written into the page is escaped (a failed report's error may quote anything).

>>> one_line({"status": "done", "dataset_drift": True, "drifted_columns": ["a"], "columns_tested": 2})
'drift detected: 1 of 2 columns drifted (a)'
>>> one_line({"status": "failed", "error": "no records"})
'failed: no records'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

# No scripts at all; the one inline <style> block; no form, frame, base or plugin.
INDEX_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}"
    "td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}.drift{color:#b00}"
)


def one_line(summary: dict[str, Any]) -> str:
    """What a report found, in a few words."""
    if summary.get("status") != "done":
        return f"{summary.get('status', 'unknown')}: {summary.get('error', '')}".rstrip(": ")
    drifted = list(summary.get("drifted_columns") or [])
    tested = summary.get("columns_tested", 0)
    verdict = "drift detected" if summary.get("dataset_drift") else "no dataset drift"
    named = f" ({', '.join(str(c) for c in drifted)})" if drifted else ""
    return f"{verdict}: {len(drifted)} of {tested} columns drifted{named}{_quality(summary)}"


def _quality(summary: dict[str, Any]) -> str:
    """The labelled rows' accuracy against the reference's, when the window has labels.

    >>> _quality({"labelled_rows": {"current": 500, "reference": 900},
    ...           "accuracy": {"current": 0.41, "reference": 0.81}, "accuracy_drop_detected": True})
    '; accuracy 0.410 vs 0.810 in the reference (500 labelled rows): drop detected'
    """
    accuracy, rows = summary.get("accuracy") or {}, summary.get("labelled_rows") or {}
    if accuracy.get("current") is None or accuracy.get("reference") is None:
        return ""
    verdict = {True: ": drop detected", False: ": no drop", None: ": too few labels to tell"}
    return (
        f"; accuracy {accuracy['current']:.3f} vs {accuracy['reference']:.3f} in the reference "
        f"({rows.get('current', 0)} labelled rows){verdict.get(summary.get('accuracy_drop_detected'), '')}"
    )


def _row(summary: dict[str, Any], href: Callable[[str], str]) -> str:
    report_id = str(summary.get("id", ""))
    link = f'<a href="{escape(href(report_id))}">open</a>' if summary.get("status") == "done" else "no page"
    marked = ' class="drift"' if summary.get("dataset_drift") else ""
    cells = [
        escape(str(summary.get("created_at", ""))),
        escape(str(summary.get("trigger", ""))),
        f"<span{marked}>{escape(one_line(summary))}</span>",
        link,
        f"<code>{escape(report_id)}</code>",
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render_index(
    summaries: Sequence[dict[str, Any]], href: Callable[[str], str], *, title: str, expires_at: str
) -> str:
    """The page. `href(report_id)` is the (signed) link to a report's HTML."""
    rows = "\n".join(_row(summary, href) for summary in summaries)
    empty = "" if summaries else "<p>No reports yet.</p>"
    header = "<tr><th>made (UTC)</th><th>trigger</th><th>summary</th><th>page</th><th>id</th></tr>"
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="referrer" content="no-referrer">'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f"<p>Newest first. These links work until {escape(expires_at)}.</p>\n"
        f"{empty}<table>{header}\n{rows}\n</table>\n</body></html>\n"
    )
