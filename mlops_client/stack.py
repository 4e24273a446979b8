"""All four seats at the local dev stack at once: `connect()`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from mlops_client.roles import Auditor, Client, Ops, Producer


@dataclass(frozen=True)
class Stack:
    """One client per role, each with its development key. Close it (or use `with`) when done."""

    producer: Producer
    client: Client
    ops: Ops
    auditor: Auditor

    def ready(self) -> dict[str, bool]:
        """Each service's `/ready` probe, by service name."""
        ready: dict[str, bool] = {}
        for role in (self.producer, self.client, self.ops, self.auditor):
            ready |= role.ready()
        return ready

    def close(self) -> None:
        for role in (self.producer, self.client, self.ops, self.auditor):
            role.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(state_dir: Path | str | None = None, **options: Any) -> Stack:
    """The local stack `mlops up` started: its URLs from the CLI's settings (`MLOPS_STATE_DIR`,
    `MLOPS_FIRST_SERVICE_PORT`; `state_dir` overrides the first), its `dev-<role>` keys from
    `<state dir>/secrets/api-keys.json`. `options` go to every `Service` (timeout_s, attempts, ...)."""
    return Stack(
        producer=Producer.from_stack(state_dir, **options),
        client=Client.from_stack(state_dir, **options),
        ops=Ops.from_stack(state_dir, **options),
        auditor=Auditor.from_stack(state_dir, **options),
    )
