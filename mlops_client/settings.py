"""Where the client finds the platform: a real deployment's URLs and key from the environment
(`ClientSettings`, prefix `MLOPS_CLIENT_`), or the local dev stack's as the `mlops` CLI started it."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_HOST = "127.0.0.1"  # where `mlops up` binds every service


class ClientSettings(BaseSettings):
    """A deployment's API key and service URLs. Set only the URLs of the services your role calls:
    e.g. `MLOPS_CLIENT_API_KEY` and `MLOPS_CLIENT_SERVING_URL`, `MLOPS_CLIENT_EXPLAIN_URL` for `Client`."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_CLIENT_", extra="ignore")

    api_key: SecretStr = Field(description="The API key of the role (sent as X-API-Key).")
    ingest_url: str | None = Field(None, description="Base URL of ingest (Producer).")
    serving_url: str | None = Field(None, description="Base URL of serving (Producer, Client, Ops).")
    explain_url: str | None = Field(None, description="Base URL of explain (Client).")
    drift_url: str | None = Field(None, description="Base URL of drift (Ops).")
    training_url: str | None = Field(None, description="Base URL of training (Ops).")
    audit_url: str | None = Field(None, description="Base URL of audit (Auditor).")

    def urls(self) -> dict[str, str]:
        """Service name -> base URL, for the URLs that are set."""
        named = {name.removesuffix("_url"): getattr(self, name) for name in type(self).model_fields}
        return {name: url for name, url in named.items() if name != "api_key" and url}


def stack_urls_and_key(state_dir: Path | str | None, key_name: str) -> tuple[dict[str, str], str]:
    """The local stack's service URLs and the development key `key_name` (e.g. `dev-client`), from the
    `mlops` CLI's own settings and port layout (`infra`), so a moved stack is found too."""
    from infra.settings import InfraSettings  # the dev tooling, only needed for a local stack
    from infra.supervisor import SERVICE_ORDER, service_port

    settings = InfraSettings() if state_dir is None else InfraSettings(state_dir=Path(state_dir))
    keys_file = settings.secrets_dir / "api-keys.json"
    if not keys_file.exists():
        raise FileNotFoundError(
            f"no development keys at {keys_file}: is the stack up (`mlops up`) with this MLOPS_STATE_DIR?"
        )
    keys = json.loads(keys_file.read_text())
    if key_name not in keys:
        raise KeyError(f"no key {key_name!r} in {keys_file} (it has {', '.join(sorted(keys))})")
    urls = {name: f"http://{LOCAL_HOST}:{service_port(settings, name)}" for name in SERVICE_ORDER}
    return urls, str(keys[key_name]["key"])
