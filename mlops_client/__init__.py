"""A small typed Python client of the platform, one class per role.

    from mlops_client import connect

    with connect() as stack:                      # the local dev stack (`mlops up`)
        print(stack.client.predict("A-1").score)  # P(bad) from the champion
        assert stack.auditor.verify().intact

For a deployment: `Client("key", {"serving": "https://...", "explain": "https://..."})`, or
`Client.from_env()` (`MLOPS_CLIENT_API_KEY`, `MLOPS_CLIENT_SERVING_URL`, ...). Every refusal or
failure is a `MlopsError` with the platform's `code`. See docs/client.md.
"""

from mlops_client.errors import MlopsError
from mlops_client.http import Service
from mlops_client.roles import Auditor, Client, Ops, Producer, Role
from mlops_client.settings import ClientSettings
from mlops_client.stack import Stack, connect

__all__ = [
    "Auditor",
    "Client",
    "ClientSettings",
    "MlopsError",
    "Ops",
    "Producer",
    "Role",
    "Service",
    "Stack",
    "connect",
]
