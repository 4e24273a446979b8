"""Create the API keys deploy/compose.yaml mounts as secrets, once, in deploy/secrets/ (git-ignored).

  secrets/api-keys.json         plain keys, one per role: hand them to their holders (mode 0600)
  secrets/api-keys.hashed.json  what the services load (MLOPS_API_KEYS_FILE): SHA-256 only
  secrets/ops-api-key           the ops key Prometheus sends as a bearer token
  secrets/link-signing.secret   signs the drift service's browser links to reports (DRIFT_LINK_SECRET_FILE)

Same format as servicekit/auth.py; the keys are not marked `dev`, so MLOPS_ENV=production takes
them. Standard library only: runs with any python3 (`python3 deploy/make_secrets.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

ROLES = ("producer", "client", "ops", "auditor", "admin")
OUT = Path(__file__).resolve().parent / "secrets"


def write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)


def main(out: Path = OUT) -> None:
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    plain_file = out / "api-keys.json"
    if not plain_file.exists():
        plain = {
            f"compose-{role}": {"role": role, "key": "mlops_" + secrets.token_urlsafe(32)} for role in ROLES
        }
        write(plain_file, json.dumps(plain, indent=2) + "\n", 0o600)
    plain = json.loads(plain_file.read_text())
    hashed = [
        {"name": name, "role": v["role"], "sha256": hashlib.sha256(v["key"].encode()).hexdigest()}
        for name, v in plain.items()
    ]
    # Read inside the containers by their own users (services: 10001, Prometheus: nobody); the
    # folder (0700) keeps them from other users of this machine.
    write(out / "api-keys.hashed.json", json.dumps(hashed, indent=2) + "\n", 0o644)
    ops = next(v["key"] for v in plain.values() if v["role"] == "ops")
    write(out / "ops-api-key", ops, 0o644)
    link_secret = out / "link-signing.secret"
    if not link_secret.exists():  # once: a new one ends every link made with the old
        write(link_secret, secrets.token_hex(32) + "\n", 0o644)
    print(f"API keys in {plain_file}")


if __name__ == "__main__":
    main()
