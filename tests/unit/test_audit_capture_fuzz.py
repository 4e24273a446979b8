"""Property: whatever a producer writes, the audit's append takes it. An envelope with any field set to
any JSON value (huge and negative integers, NaN and infinities, NULs, lone surrogates, nesting, the
wrong types), written in any JSON spelling, is appended as exactly one row, an event or undecodable,
and the chain still verifies, on SQLite and PostgreSQL. A value that failed the insert would fail its
whole batch on every retry, minutes of a stalled trail (tests/unit/test_audit_hostile_input.py has the
cases this found)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.registry import encode_event
from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.verification import verify_store
from tests.unit.test_audit_erasure import subject_events
from tests.unit.test_audit_store import new_url  # noqa: F401  (the two-backend fixture)
from tests.unit.test_audit_support import lineage_flow, open_store

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates and NUL too
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | TEXT
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# What a careless or hostile producer writes most often, drawn as often as everything else together.
NASTY = st.sampled_from(
    [2**31, -(2**31) - 1, 2**63, 2**64, 2**100, -(2**63) - 1, "\x00", "a\x00b", "\ud800", "x\udfff",
     float("nan"), float("-inf"), 1e308, -0.0, "", " ", "x" * 300, "1", 1, True, [], {}, "名前😀", "\u2028"]
)  # fmt: skip
VALUES = NASTY | JSON
ENVELOPE_FIELDS = ("event_id", "event_type", "schema_version", "occurred_at", "producer", "correlation_id",
                   "causation_id", "payload")  # fmt: skip
PAYLOAD_FIELDS = ("entity_id", "entity_ids", "record", "features", "model_name", "model_version",
                  "prediction_id", "run_id", "sealed", "label", "event_time")  # fmt: skip


def envelopes() -> list[dict[str, Any]]:
    return [json.loads(encode_event(e)) for e in [*subject_events(), *lineage_flow()]]


@pytest.fixture
def trail(new_url: Callable[[], str]) -> Iterator[SqlAuditStore]:  # noqa: F811
    """One store per backend that every example appends to: a growing chain, as in production, and one
    database where a fresh one per example filled the disk with thousands of PostgreSQL databases."""
    store = open_store(new_url())
    yield store
    store.dispose()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    template=st.integers(min_value=0, max_value=len(envelopes()) - 1),
    top=st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), VALUES, max_size=2),
    inner=st.dictionaries(st.sampled_from(PAYLOAD_FIELDS), VALUES, max_size=3),
    ascii_only=st.booleans(),
)
def test_any_envelope_is_appended_as_one_row_and_the_chain_verifies(
    trail: SqlAuditStore,
    template: int,
    top: dict[str, Any],
    inner: dict[str, Any],
    ascii_only: bool,
) -> None:
    before = trail.head()[0].length
    # A new id per row (the audit drops a repeated event id as a redelivery), the same on a replay.
    envelope = {**envelopes()[template], "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fuzz/{before}"))}
    if isinstance(envelope.get("payload"), dict):
        envelope["payload"] = {**envelope["payload"], **inner}
    envelope.update(top)
    value = json.dumps(envelope, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")
    result = AuditService(trail).capture([Captured("fuzz", 0, before, before + 1, b"k", value)])
    assert result.appended == 1
    assert trail.head()[0].length == before + 1
    assert verify_store(trail).ok
