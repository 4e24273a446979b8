"""Planted PII through the real Kafka ingest path: nothing planted appears in the bytes of
records.clean or records.rejected. The hostile shapes of issue 18 (names in any casing, e-mails on
unusual domains, numbers without separators, IBANs, cards, dates of birth, addresses, PII-shaped
application ids), in valid and in invalid records; then a fixed-seed sample of the planted corpus."""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from contracts.events import RecordCleaned, RecordRejected
from tests.integration.test_ingest_pipeline import RunningIngest, ingest  # noqa: F401 (fixture)
from workbench.demo_data import ApplicationStream, run_id
from workbench.pii_corpus import Planted, planted_corpus
from workbench.privacy_eval import STRUCTURED_TARGET, TEXT_TARGET, Report, leaked

NOTES = [  # (note, fragments that must not survive)
    ("spoke with john smith; her ssn is 316722962", ("smith", "316722962")),
    ("SPOKE WITH MARIA GONZALEZ, MOBILE 2125550188", ("gonzalez", "2125550188")),
    (
        "guarantor is kowalczyk, zbigniew - reply to jane.doe+loans@mail.example",
        ("kowalczyk", "jane.doe+loans"),
    ),
    ("documents came from X@TEST.INVALID and curator@art.museum", ("x@test.invalid", "curator@art.museum")),
    ("ip-literal user@[192.0.2.17]; ss# 666 12 3456", ("user@[192.0.2.17]", "666123456")),
    (
        "iban gb82 west 1234 5698 7654 32, card 4111111111111112",
        ("gb82west12345698765432", "4111111111111112"),
    ),
    ("born 14 March 1985, lives at 391 johnson burg apt. 636", ("14 march 1985", "391 johnson burg")),
    ("letter signed by mrs o'brien, tel. +4915112345678", ("o'brien", "4915112345678")),
]
PII_IDS = ["123-45-6789", "316722962", "(212) 555-0188", "+4915112345678", "john.smith", "MARIA_GONZALEZ",
           "jane@example.invalid", "app-4111-1111-1111-1111"]  # fmt: skip


def hostile_records() -> tuple[list[dict[str, Any]], list[Planted]]:
    apps = [
        dict(a.record)
        for a in ApplicationStream(seed=41, id_prefix=f"pv-{run_id()}").take(
            2 * len(NOTES) + len(PII_IDS) + 1
        )
    ]
    planted: list[Planted] = []
    for i, (note, fragments) in enumerate(NOTES):
        apps[i]["notes"] = note
        apps[len(NOTES) + i] |= {"notes": note, "housing": "boat"}  # invalid: the rejected copy counts too
        planted.append(Planted("NOTE", note, fragments))
    for i, value in enumerate(PII_IDS):
        record = apps[2 * len(NOTES) + i]
        record["application_id"] = value
        if i % 2:
            record["housing"] = "boat"
        planted.append(Planted("ID", value, (value.lower(),)))
    own = apps[-1]  # the applicant's own SSN in the notes without dashes, own name lower-cased
    own |= {"ssn": "078-05-1120", "notes": f"{own['applicant_name'].lower()} gave ssn 078051120 again"}
    planted.append(Planted("OWN", "078051120", ("078051120",)))
    planted += [
        Planted("OWN", part, (part.lower(),)) for part in own["applicant_name"].split() if len(part) > 2
    ]
    return apps, planted


async def test_no_planted_value_reaches_clean_or_rejected(ingest: RunningIngest) -> None:  # noqa: F811
    records, planted = hostile_records()
    offsets = await ingest.produce([(None, msgspec.json.encode(r)) for r in records])
    outcomes = await ingest.outcomes(len(offsets))
    everything = b"\n".join(ingest.raw_values).decode()
    assert [p.value for p in planted if leaked(p, everything)] == []
    for offset, record in zip(offsets, records, strict=True):
        event = outcomes[offset]
        if record["application_id"] in PII_IDS:
            assert isinstance(event, RecordRejected) and event.payload.entity_id is None
            codes = {e.code for e in event.payload.reason.errors if e.field == "application_id"}
            shaped_like_an_id = re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", record["application_id"])
            assert codes == ({"identifier_looks_like_pii"} if shaped_like_an_id else {"pattern_mismatch"})
        else:
            assert isinstance(event, RecordRejected if record["housing"] == "boat" else RecordCleaned)


async def test_a_corpus_sample_meets_the_targets_over_kafka(ingest: RunningIngest) -> None:  # noqa: F811
    corpus = planted_corpus(150, seed=31)
    run = uuid.uuid4().hex[:8]  # ingest's ledger outlives a test run: a resent id would be a duplicate
    for i, planted in enumerate(corpus):
        planted.record["application_id"] = f"pc-{run}-{i:07d}"
    values = [msgspec.json.encode(p.record) for p in corpus]
    for i in range(0, len(values), 10):  # some are made invalid: rejected copies count too
        values[i] = msgspec.json.encode(corpus[i].record | {"housing": "boat"})
    offsets = await ingest.produce([(None, v) for v in values])
    outcomes = await ingest.outcomes(len(offsets))
    assert sum(isinstance(outcomes[o], RecordRejected) for o in offsets) == 15
    report = Report()
    for planted, offset in zip(corpus, offsets, strict=True):
        output = outcomes[offset].model_dump_json()
        for value in planted.structured:
            report.add(f"structured:{value.entity}", value, output)
        for value in planted.free_text:
            report.add(f"text:{value.entity}", value, output)
    recall = report.recall()
    assert all(v >= STRUCTURED_TARGET for k, v in recall.items() if k.startswith("structured")), recall
    assert all(v >= TEXT_TARGET for k, v in recall.items() if k.startswith("text") and "UNSEEN" not in k), (
        recall
    )
