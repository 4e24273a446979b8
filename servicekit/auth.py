"""API keys bound to roles, as a FastAPI dependency.

Keys are random tokens (>= 128 bits), so a single SHA-256 is the right hash: no salt or KDF is
needed against guessing, and lookups stay O(1) per request. Services only ever see the hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, TypeAdapter

log = logging.getLogger(__name__)

KEY_PREFIX = "mlops_"


class Role(StrEnum):
    PRODUCER = "producer"
    CLIENT = "client"
    OPS = "ops"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Label Studio's webhook calls carry this key, and the Label Studio admin can read it there: it
    # opens the annotation service's webhook route and nothing else (not /labels, not /records).
    WEBHOOK = "webhook"


# Every role a person or a client program holds: "any role" on a route means these, never the webhook's.
USER_ROLES = tuple(role for role in Role if role is not Role.WEBHOOK)


class ApiKeyEntry(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="Who holds the key (shown in logs).")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the key.")
    dev: bool = Field(False, description="Generated for local development; refused in production.")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyRegistry:
    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._by_hash = {entry.sha256: entry for entry in entries}

    @classmethod
    def from_json(cls, text: str) -> ApiKeyRegistry:
        return cls(TypeAdapter(list[ApiKeyEntry]).validate_json(text))

    @classmethod
    def load(cls, path: Path | None, inline_json: str | None, *, production: bool) -> ApiKeyRegistry:
        text = path.read_text() if path is not None else (inline_json or "[]")
        registry = cls.from_json(text)
        if production and (not registry._by_hash or any(e.dev for e in registry._by_hash.values())):
            raise ValueError("production refuses an empty API-key registry or development keys")
        return registry

    def authenticate(self, key: str) -> Principal | None:
        entry = self._by_hash.get(hash_key(key))
        return Principal(entry.name, entry.role) if entry else None

    def __len__(self) -> int:
        return len(self._by_hash)


def write_dev_keys(secrets_dir: Path, names_and_roles: Iterable[tuple[str, Role]]) -> tuple[Path, Path]:
    """Create development keys once per holder: plain keys for the developer (0600), hashes for the
    services."""
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    plain_file, hashed_file = secrets_dir / "api-keys.json", secrets_dir / "api-keys.hashed.json"
    plain = json.loads(plain_file.read_text()) if plain_file.exists() else {}
    missing = {
        name: {"role": role.value, "key": generate_key()}
        for name, role in names_and_roles
        if name not in plain
    }
    if missing:  # a holder added since the file was made gets a key; existing keys never change
        plain.update(missing)
        plain_file.touch(mode=0o600)
        plain_file.write_text(json.dumps(plain, indent=2) + "\n")
    hashed = [
        {"name": name, "role": v["role"], "sha256": hash_key(v["key"]), "dev": True}
        for name, v in plain.items()
    ]
    hashed_file.write_text(json.dumps(hashed, indent=2) + "\n")
    return plain_file, hashed_file


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key bound to a role.")
bearer_header = HTTPBearer(auto_error=False, description="The same API key as a bearer token (for scrapers).")


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency admitting the given roles (admin is admitted everywhere)."""
    admitted = frozenset(roles) | {Role.ADMIN}

    # Async although nothing here awaits: FastAPI runs a plain `def` dependency in its thread pool,
    # one hand-off to a worker thread and back per request, and under load each hand-off waits for
    # a core. A hash and a dict lookup belong on the event loop. (Code that checks a key itself
    # calls `authorize`, which is plain: calling this would only make a coroutine, admitting all.)
    async def dependency(
        request: Request,
        api_key: Annotated[str | None, Depends(api_key_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_header)],
    ) -> Principal:
        return authorize(request, api_key, bearer, admitted)

    dependency.admitted_roles = admitted  # type: ignore[attr-defined]  # read by declare_roles
    return dependency


def authorize(
    request: Request,
    api_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
    admitted: frozenset[Role],
) -> Principal:
    """The principal of the request's key if its role is `admitted` (admin always is); 401 without a
    key or with an unknown one, 403 for another role."""
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key (X-API-Key header)",
            {"WWW-Authenticate": "Bearer"},
        )
    registry: ApiKeyRegistry = request.app.state.api_keys
    principal = registry.authenticate(key)
    if principal is None:
        log.warning("rejected an unknown API key", extra={"path": request.url.path})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", {"WWW-Authenticate": "Bearer"})
    if principal.role != Role.ADMIN and principal.role not in admitted:
        allowed = ", ".join(sorted(r.value for r in admitted))
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"role '{principal.role}' may not call this; needs {allowed}"
        )
    request.state.principal = principal
    return principal


def admitted_roles(dependant: Dependant) -> frozenset[Role] | None:
    """The roles a route admits, from its `require_roles` dependency (None: the route is open)."""
    for sub in dependant.dependencies:
        roles = getattr(sub.call, "admitted_roles", None)
        if roles is None:
            roles = admitted_roles(sub)
        if roles is not None:
            return frozenset(roles)
    return None


def declare_roles(app: FastAPI) -> None:
    """Every operation of the app's OpenAPI document says which roles it admits: `x-roles` for a
    program (the fuzzer tries each role's key against it), a sentence in the description for a
    person. Read from the routes' own dependencies, so the document cannot drift from them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        # Through FastAPI's own walk: included routers are expanded lazily (FastAPI >= 0.165).
        for route in iter_route_contexts(app.routes):
            if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
                continue
            roles = admitted_roles(route.dependant)
            names = sorted(role.value for role in roles) if roles is not None else []
            note = f"Roles: {', '.join(names)}." if names else "Open: no key needed."
            for method in route.methods or ():
                operation = document["paths"].get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    operation["x-roles"] = names
                    operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        return document

    app.openapi = openapi  # type: ignore[method-assign]
