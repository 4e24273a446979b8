"""Short-lived signed links: pages a browser opens without the `X-API-Key` header it cannot send.

A link names one resource (a string such as `drift:report:<id>`) and an expiry, both in its query:
`?expires=<unix seconds>&signature=<hex>`, where the signature is HMAC-SHA256 over
`<resource>\\n<expires>` under a key derived from the service's link secret. So:

- a link opens the one resource it was made for: the resource is signed, not sent, and each route
  names its own (another report's, or the index's, signature does not match);
- changing `expires` (or any digit of the signature) breaks the signature; signatures are compared
  in constant time (`hmac.compare_digest`);
- an expired link is refused, and so is one whose expiry lies further ahead than any link is made for
  (`max_ttl_s`), so a leaked secret cannot mint links for years either.

Routes take `key_or_link(resource_of, *roles)`: an API key of an admitted role exactly as
`require_roles` checks it, or, when no key is sent, a valid link for the route's resource. With
neither, the answer is `require_roles`'s 401: a signed route is not an open one, and the roles it
admits are still declared in the OpenAPI document (`admitted_roles`). A refused link is a 403 in the
platform's error shape, code `link_invalid` or `link_expired`.

The secret is text of at least 32 characters: in development `mlops up` writes one, once, to
`<state_dir>/secrets/link-signing.secret` (0600, like the API keys); a service configured with none
signs with a random secret of its own (links then end with the process). Production needs one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from servicekit.auth import Principal, Role, api_key_header, authorize, bearer_header
from servicekit.errors import ServiceError

SECRET_MIN_CHARS = 32
LINK_SECRET_FILE = "link-signing.secret"
MAX_TTL_S = 24 * 3600
MAX_EXPIRES = 2**40  # a bound for the query parameter (year 36812), not a validity


class LinkRefused(ServiceError):
    """A link that is not for this page: tampered, made for another resource, or malformed."""

    status = 403
    code = "link_invalid"


class LinkExpired(LinkRefused):
    code = "link_expired"


@dataclass(frozen=True)
class SignedLink:
    resource: str
    expires: int
    signature: str

    @property
    def query(self) -> str:
        return urlencode({"expires": self.expires, "signature": self.signature})

    @property
    def expires_at(self) -> str:
        return expiry_iso(self.expires)


def expiry_iso(expires: int) -> str:
    return datetime.fromtimestamp(expires, UTC).isoformat()


class LinkSigner:
    """Signs and checks links. `clock` (unix seconds) is injected so tests need no sleeps.

    >>> signer = LinkSigner("s" * 32, ttl_s=60, clock=lambda: 1000.0)
    >>> link = signer.sign("report:a")
    >>> link.expires, signer.verify("report:a", link.expires, link.signature) == link
    (1060, True)
    """

    def __init__(
        self,
        secret: str,
        *,
        ttl_s: int = 900,
        max_ttl_s: int = MAX_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < SECRET_MIN_CHARS:
            raise ValueError(f"a link secret needs at least {SECRET_MIN_CHARS} characters")
        if not 0 < ttl_s <= max_ttl_s:
            raise ValueError(f"ttl_s must be within (0, {max_ttl_s}]")
        self._key = hmac.new(secret.encode(), b"servicekit signed links v1", hashlib.sha256).digest()
        self.ttl_s, self.max_ttl_s, self.clock = ttl_s, max_ttl_s, clock

    def sign(self, resource: str, ttl_s: int | None = None, *, expires: int | None = None) -> SignedLink:
        """A link to `resource` for `ttl_s` seconds from now (default `self.ttl_s`), or until
        `expires` (e.g. the expiry of the page that lists it)."""
        if expires is None:
            ttl = self.ttl_s if ttl_s is None else ttl_s
            if not 0 < ttl <= self.max_ttl_s:
                raise ValueError(f"ttl_s must be within (0, {self.max_ttl_s}]")
            expires = int(self.clock()) + ttl
        return SignedLink(resource, expires, self._mac(resource, expires))

    def verify(self, resource: str, expires: int | None, signature: str | None) -> SignedLink:
        """The link, if it is a valid one for `resource` now; else `LinkRefused` / `LinkExpired`."""
        if expires is None or not signature:
            raise LinkRefused("a signed link needs both `expires` and `signature`; ask for a new link")
        now = self.clock()
        if expires > now + self.max_ttl_s:
            raise LinkRefused("the link's expiry lies further ahead than any link is made for")
        expected = self._mac(resource, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkRefused("the link's signature does not match this page (altered, or for another page)")
        if expires <= now:
            raise LinkExpired("the link has expired; ask for a new one (e.g. `mlops reports`)")
        return SignedLink(resource, expires, signature)

    def _mac(self, resource: str, expires: int) -> str:
        if "\n" in resource:
            raise ValueError("a resource name is one line")
        return hmac.new(self._key, f"{resource}\n{expires}".encode(), hashlib.sha256).hexdigest()


def read_secret(path: Path) -> str:
    """The secret a file holds (stripped); ValueError if it is too short to sign with."""
    secret = path.read_text().strip()
    if len(secret) < SECRET_MIN_CHARS:
        raise ValueError(f"{path} holds fewer than {SECRET_MIN_CHARS} characters")
    return secret


def write_dev_link_secret(secrets_dir: Path) -> Path:
    """Create the development link secret once (0600 in a 0700 folder, like the API keys)."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = secrets_dir / LINK_SECRET_FILE
    try:  # O_EXCL: two processes starting at once never write two different secrets
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path


def random_secret() -> str:
    """A secret for one process only (development without a configured one)."""
    return secrets.token_hex(32)


ExpiresParam = Annotated[
    int | None,
    Query(ge=0, le=MAX_EXPIRES, description="Of a signed link: when it expires (unix seconds)."),
]
SignatureParam = Annotated[
    str | None, Query(max_length=128, description="Of a signed link: its signature (hex).")
]


def key_or_link(
    resource_of: Callable[[Request], str], *roles: Role
) -> Callable[..., Awaitable[Principal | SignedLink]]:
    """Dependency admitting an API key of `roles` (and admin), or, without a key, a valid signed link
    for the resource `resource_of(request)` names. The signer is `request.app.state.link_signer`."""
    admitted = frozenset(roles) | {Role.ADMIN}

    async def dependency(  # async: on the event loop, not a thread-pool hand-off (see require_roles)
        request: Request,
        api_key: Annotated[str | None, Depends(api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_header)],
        expires: ExpiresParam = None,
        signature: SignatureParam = None,
    ) -> Principal | SignedLink:
        if api_key or bearer or (expires is None and signature is None):
            return authorize(request, api_key, bearer, admitted)
        signer: LinkSigner = request.app.state.link_signer
        link = signer.verify(resource_of(request), expires, signature)
        request.state.link = link
        return link

    dependency.admitted_roles = admitted  # type: ignore[attr-defined]  # declare_roles
    return dependency
