"""Signed links (servicekit/signed_links.py): a link opens its one resource until it expires, and
nothing else; the clock is injected, so nothing here sleeps."""

from __future__ import annotations

import doctest
import stat
from pathlib import Path

import pytest

from servicekit import signed_links
from servicekit.signed_links import (
    MAX_TTL_S,
    LinkExpired,
    LinkRefused,
    LinkSigner,
    read_secret,
    write_dev_link_secret,
)

SECRET = "0123456789abcdef" * 4


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(clock: Clock, secret: str = SECRET, ttl_s: int = 900) -> LinkSigner:
    return LinkSigner(secret, ttl_s=ttl_s, clock=clock)


def test_doctests() -> None:
    assert doctest.testmod(signed_links).failed == 0


def test_a_link_opens_its_resource_until_it_expires_and_not_after() -> None:
    clock = Clock()
    links = signer(clock)
    link = links.sign("drift:report:a")
    assert link.expires == int(clock.now) + 900
    assert links.verify("drift:report:a", link.expires, link.signature) == link
    clock.now = link.expires - 1
    links.verify("drift:report:a", link.expires, link.signature)
    clock.now = link.expires
    with pytest.raises(LinkExpired) as refused:
        links.verify("drift:report:a", link.expires, link.signature)
    assert refused.value.status == 403 and refused.value.code == "link_expired"


def test_a_link_for_one_resource_opens_no_other() -> None:
    links = signer(Clock())
    link = links.sign("drift:report:a")
    for other in ("drift:report:b", "drift:reports-index", "drift:report:a ", "drift:report:"):
        with pytest.raises(LinkRefused) as refused:
            links.verify(other, link.expires, link.signature)
        assert refused.value.code == "link_invalid"


@pytest.mark.parametrize("change", ["expires", "signature", "case", "short", "long", "non-ascii"])
def test_an_altered_link_is_refused(change: str) -> None:
    links = signer(Clock())
    link = links.sign("r")
    expires, signature = link.expires, link.signature
    if change == "expires":
        expires += 3600
    elif change == "signature":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    elif change == "case":
        signature = signature.upper()
    elif change == "short":
        signature = signature[:32]
    elif change == "long":
        signature += "00"
    else:
        signature = "é" * 64
    with pytest.raises(LinkRefused) as refused:
        links.verify("r", expires, signature)
    assert type(refused.value) is LinkRefused


def test_a_link_signed_with_another_secret_is_refused() -> None:
    clock = Clock()
    link = signer(clock, secret="x" * 40).sign("r")
    with pytest.raises(LinkRefused):
        signer(clock).verify("r", link.expires, link.signature)


@pytest.mark.parametrize(("expires", "signature"), [(None, "ab"), (1_800_000_100, None), (1_800_000_100, "")])
def test_a_link_missing_a_part_is_refused(expires: int | None, signature: str | None) -> None:
    with pytest.raises(LinkRefused):
        signer(Clock()).verify("r", expires, signature)


def test_an_expiry_beyond_the_longest_ttl_is_refused_even_when_signed() -> None:
    clock = Clock()
    links = signer(clock)
    far = links.sign("r", expires=int(clock.now) + MAX_TTL_S + 10)  # only a holder of the secret could
    with pytest.raises(LinkRefused, match="further ahead"):
        links.verify("r", far.expires, far.signature)


def test_ttls_and_secrets_are_bounded() -> None:
    with pytest.raises(ValueError):
        LinkSigner("short")
    with pytest.raises(ValueError):
        LinkSigner(SECRET, ttl_s=0)
    with pytest.raises(ValueError):
        LinkSigner(SECRET, ttl_s=MAX_TTL_S + 1)
    with pytest.raises(ValueError):
        signer(Clock()).sign("r", ttl_s=MAX_TTL_S + 1)
    with pytest.raises(ValueError):
        signer(Clock()).sign("two\nlines")


def test_the_links_of_a_page_can_share_its_expiry() -> None:
    clock = Clock()
    links = signer(clock)
    index = links.sign("index", 60)
    report = links.sign("report", expires=index.expires)
    assert report.expires == index.expires and report.signature != index.signature
    assert "expires=" in report.query and f"signature={report.signature}" in report.query


def test_the_dev_secret_is_written_once_private(tmp_path: Path) -> None:
    path = write_dev_link_secret(tmp_path / "secrets")
    first = read_secret(path)
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert write_dev_link_secret(tmp_path / "secrets") == path and read_secret(path) == first
    path.write_text("short\n")
    with pytest.raises(ValueError):
        read_secret(path)
