"""Create the API keys deploy/compose.yaml mounts as secrets, once, in deploy/secrets/ (git-ignored).

  secrets/api-keys.json         plain keys, one per role: hand them to their holders (mode 0600)
  secrets/api-keys.hashed.json  what the services load (MLOPS_API_KEYS_FILE): SHA-256 only
  secrets/ops-api-key           the ops key Prometheus sends as a bearer token
  secrets/link-signing.secret   signs the drift service's browser links to reports (DRIFT_LINK_SECRET_FILE)

  secrets/kafka/                the locked-down bus's passwords and the files made from them: the
                                broker's PLAIN logins, each container's principal, the bus-access
                                job's credentials (infra/compose_bus.py lists them)
  secrets/redis/                Redis's password, its redis.conf and the online store's settings
                                for features, training and serving (infra/compose_redis.py)

Same format as servicekit/auth.py; the keys are not marked `dev`, so MLOPS_ENV=production takes
them. The bus's files come from the plan the local bus applies (infra/bus_plan.py), so this runs with
the project installed: `.venv/bin/python deploy/make_secrets.py` after `make install`. Reruns keep
every key and password, and add what a new principal needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

# Run as a script (`python deploy/make_secrets.py`), the repository root is not on the path yet.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infra.compose_bus import write_compose_secrets
from infra.compose_redis import write_compose_redis

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
    write_compose_secrets(out / "kafka")
    write_compose_redis(out / "redis")
    print(f"API keys in {plain_file}; the bus's principals in {out / 'kafka'}")


if __name__ == "__main__":
    main()
