"""Every relative link in the project's Markdown leads somewhere: the file exists, and a `#fragment`
into a Markdown file names one of its headings (GitHub's anchors). A section deleted or renamed by
mistake, with figures other documents point at, fails here rather than in a reader's browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {"node_modules", "site-packages"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not any(part.startswith(".") or part in SKIPPED or part.endswith(".egg-info") for part in
                   path.relative_to(ROOT).parts)
    )  # fmt: skip


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, code marks and punctuation dropped, spaces to '-'."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")  # GitHub numbers repeats
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for link in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto: ...
            continue
        target_name, _, fragment = link.partition("#")
        target = (path.parent / target_name).resolve() if target_name else path
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{link}: no heading with that anchor")
    return broken


def test_the_checker_knows_githubs_anchors(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text(
        "# Title\n## The whole platform (bench/platform_throughput.py)\n```\n# not a heading\n```\n"
        "## Title\n[ok](#the-whole-platform-benchplatform_throughputpy) [ok](#title-1) [gone](#not-a-heading)"
        " [gone](b.md) [web](https://example.org/x)\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == ["#not-a-heading: no heading with that anchor", "b.md: no such file"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(path: Path) -> None:
    assert broken_links(path) == []
