"""Reports in a browser, through the drift service's real app (no broker, a stand-in for Evidently):
signed links to the index page and to each report open what they name and nothing else, expire by an
injected clock, and hostile query strings get a 4xx; without a key or a link it is still a 401."""

from __future__ import annotations

import doctest
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from servicekit.signed_links import LinkSigner, write_dev_link_secret
from services.drift.adapters.evidently_report import EvidentlyResult
from services.drift.app import create_app
from services.drift.domain import report_index
from services.drift.domain.report_summary import summarize
from services.drift.reports import ReportService
from services.drift.settings import DriftSettings
from tests.unit.drift_helpers import app_settings, keep, rows

HOSTILE = '<script>alert("x")</script>'


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Maker:
    """Evidently's stand-in: the first report fails with a hostile message, the others find drift."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, current: Any, reference: Any, numeric: Any, categorical: Any, flagged: Any = ()
    ) -> EvidentlyResult:
        self.calls += 1
        if self.calls == 1:
            raise ValueError(HOSTILE)
        summary = {**summarize({}), "dataset_drift": True, "drifted_columns": ["amount"], "columns_tested": 2}
        return EvidentlyResult(f"<html>report {self.calls}</html>", "{}", summary, [])


Setup = tuple[TestClient, dict[str, str], Clock, list[str]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    tmp_path = tmp_path_factory.mktemp("drift-links")
    settings, keys = app_settings(tmp_path, link_secret="s" * 40)
    keep(settings.resolved_state_path.parent, rows(100), 5000, 100)
    app = create_app(settings)
    clock = Clock()
    app.state.link_signer = LinkSigner("s" * 40, ttl_s=settings.link_ttl_s, clock=clock)
    client = TestClient(app)  # no lifespan: no broker
    made: ReportService = app.state.reports
    made.maker = Maker()
    ids = []
    for _ in range(3):  # failed, then two done; one at a time, so the newest is the last
        ids.append(client.post("/reports", headers={"X-API-Key": keys["ops"]}).json()["id"])
        made.make(made.store.requests())
    return client, keys, clock, ids


def links(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    answer = client.get("/reports/links", params=params, headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body: dict[str, Any] = answer.json()
    return body


def local(url: str) -> str:
    """The path and query of a link the service made for https://drift.example."""
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "drift.example"
    return f"{parts.path}?{parts.query}"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if tag == "a" and k == "href" and v]


def test_the_index_lists_the_reports_newest_first_with_links_that_open(setup: Setup) -> None:
    client, keys, _, ids = setup
    page = client.get(local(links(client, keys["ops"])["index"]))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert [html.index(i) for i in reversed(ids)] == sorted(html.index(i) for i in ids)  # newest first
    assert "drift detected: 1 of 2 columns drifted (amount)" in html and "manual" in html
    assert HOSTILE not in html and "&lt;script&gt;" in html  # the failed report's error, escaped
    parser = Links()
    parser.feed(html)
    assert len(parser.hrefs) == 2  # the failed report has no page
    for href, report_id in zip(parser.hrefs, reversed(ids[1:]), strict=True):
        assert href.startswith(f"{report_id}.html?")
        opened = client.get(f"/reports/{href}")
        assert opened.status_code == 200 and opened.text.startswith("<html>report")
        assert "sandbox" in opened.headers["content-security-policy"]
        assert opened.headers["referrer-policy"] == "no-referrer"


def test_a_report_link_opens_its_report_only_and_until_it_expires(setup: Setup) -> None:
    client, keys, clock, ids = setup
    body = links(client, keys["ops"], report=ids[2], ttl_s=60)
    url = local(body["report"])
    assert url.startswith(f"/reports/{ids[2]}.html?")
    query = url.split("?", 1)[1]
    assert client.get(url).text == "<html>report 3</html>"
    assert client.get(f"/reports/{ids[2]}/html?{query}").status_code == 200  # the alias too
    other = client.get(f"/reports/{ids[1]}.html?{query}")
    assert other.status_code == 403 and other.json()["code"] == "link_invalid"
    index = client.get(f"/reports/index.html?{query}")
    assert index.status_code == 403 and index.json()["code"] == "link_invalid"
    assert client.get(f"/reports/{ids[2]}/json?{query}").status_code == 401  # HTML only
    saved, clock.now = clock.now, clock.now + 61
    try:
        expired = client.get(url)
        assert expired.status_code == 403 and expired.json()["code"] == "link_expired"
    finally:
        clock.now = saved


def test_an_index_link_opens_no_report(setup: Setup) -> None:
    client, keys, _, ids = setup
    query = local(links(client, keys["ops"])["index"]).split("?", 1)[1]
    refused = client.get(f"/reports/{ids[2]}.html?{query}")
    assert refused.status_code == 403 and refused.json()["code"] == "link_invalid"


def test_links_are_made_for_ops_only_and_only_to_pages_that_exist(setup: Setup) -> None:
    client, keys, _, ids = setup
    assert client.get("/reports/links").status_code == 401
    assert client.get("/reports/links", headers={"X-API-Key": keys["client"]}).status_code == 403
    ops = {"X-API-Key": keys["ops"]}
    assert client.get("/reports/links", params={"report": str(uuid.uuid4())}, headers=ops).status_code == 404
    assert client.get("/reports/links", params={"report": ids[0]}, headers=ops).status_code == 404  # failed
    for ttl in (0, 10, 10**9):
        assert client.get("/reports/links", params={"ttl_s": ttl}, headers=ops).status_code == 422


def test_the_index_still_opens_with_the_ops_key_and_a_link_never_lifts_a_refused_key(setup: Setup) -> None:
    client, keys, _, _ = setup
    assert client.get("/reports/index.html", headers={"X-API-Key": keys["ops"]}).status_code == 200
    query = local(links(client, keys["ops"])["index"]).split("?", 1)[1]
    for key in (keys["client"], "not-a-key"):
        refused = client.get(f"/reports/index.html?{query}", headers={"X-API-Key": key})
        assert refused.status_code in (401, 403)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 401),
        ("expires=1800000100", 403),
        ("signature=" + "0" * 64, 403),
        ("expires=1800000100&signature=garbage", 403),
        ("expires=1800000100&signature=" + "0" * 64, 403),
        ("expires=1800000100&signature=%E2%98%83%00", 403),
        ("expires=1800000100&signature=" + "a" * 500, 422),
        ("expires=-1&signature=" + "0" * 64, 422),
        ("expires=99999999999999999999999999&signature=" + "0" * 64, 422),
        ("expires=1e9&signature=" + "0" * 64, 422),
        ("expires=99999999999&signature=" + "0" * 64, 403),
    ],
)
def test_hostile_links_get_a_4xx_in_the_error_shape(setup: Setup, query: str, status: int) -> None:
    client, _, _, ids = setup
    for path in ("/reports/index.html", f"/reports/{ids[2]}.html", "/reports/not-an-id.html"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == status, (path, answer.text)
        assert set(answer.json()) >= {"detail", "code"}
        assert re.fullmatch(r"[a-z_]+", answer.json()["code"])


def test_the_link_secret_is_refused_short_and_required_in_production(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        DriftSettings(state_dir=tmp_path, link_secret="changeme")
    with pytest.raises(ValueError, match="production never generates one"):
        DriftSettings(state_dir=tmp_path, environment="production", api_keys_json="[]")
    with pytest.raises(ValueError, match="a named file must exist"):
        DriftSettings(state_dir=tmp_path, link_secret_file=tmp_path / "missing")
    assert DriftSettings(state_dir=tmp_path).link_signing_secret() is None  # development: a random one
    path = write_dev_link_secret(tmp_path / "secrets")
    production = DriftSettings(state_dir=tmp_path, environment="production", api_keys_json="[]")
    assert production.link_signing_secret() == path.read_text().strip()
    assert path.read_text().strip() not in repr(DriftSettings(state_dir=tmp_path, link_secret="q" * 40))


def test_index_page_doctests() -> None:
    assert doctest.testmod(report_index).failed == 0
