"""What decoding an event costs a consumer: servicekit.decoding's fast path (msgspec, checked by encoding
back to the same bytes) against the strict decode of `contracts.parse_event` it falls back to (Python's
json with the duplicate-key hook and the other checks), and each whole (decode, upcast, pydantic
validation). The events are
what one demo application causes on the wire: its RecordCleaned (a demo loan application with its
free-text notes), its LabelObserved, a FeaturesUpdated and a PredictionMade, encoded as the services
encode them. In process, CPU time (`time.process_time`), medians over `--runs`. Nothing here asserts.

    python -m bench.event_decoding [--applications 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from contracts.events import LabelObserved, LabelObservedPayload, RecordCleaned
from contracts.registry import _decode, encode_event, parse_event
from contracts.samples import sample_events
from servicekit.decoding import decode_canonical, decode_event
from workbench.demo_data import ApplicationStream


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.event_decoding", description=__doc__.splitlines()[0])
    p.add_argument("--applications", type=int, default=2000, help="demo applications (4 events each)")
    p.add_argument("--runs", type=int, default=5, help="timed passes over every event")
    args = p.parse_args(argv)
    if args.applications < 1 or args.runs < 1:
        p.error("--applications and --runs must be 1 or more")
    return args


def wire_events(applications: int) -> list[bytes]:
    samples = {type(e).__name__: e for e in sample_events()}
    cleaned = samples["RecordCleaned"]
    assert isinstance(cleaned, RecordCleaned)
    found = []
    for app in ApplicationStream(seed=7, id_prefix="bench").take(applications):
        entity = app.record["application_id"]
        payload = cleaned.payload.model_copy(update={"record": app.record, "entity_id": entity})
        label = LabelObservedPayload(dataset="loan_applications", entity_id=entity, label=app.label,
                                     event_time=app.record["applied_at"])  # fmt: skip
        found += [
            encode_event(cleaned.model_copy(update={"payload": payload})),
            encode_event(LabelObserved.create(label, producer="bench")),
            encode_event(samples["FeaturesUpdated"]),
            encode_event(samples["PredictionMade"]),
        ]
    return found


def per_event_us(step: Callable[[bytes], Any], wire: list[bytes], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        for data in wire:
            step(data)
        times.append(time.process_time() - started)
    return statistics.median(times) / len(wire) * 1e6


def main() -> None:
    args = parse_args()
    wire = wire_events(args.applications)
    strict = per_event_us(_decode, wire, args.runs)
    fast = per_event_us(decode_canonical, wire, args.runs)
    parse, decode = per_event_us(parse_event, wire, args.runs), per_event_us(decode_event, wire, args.runs)
    figures = {
        "events": len(wire), "runs": args.runs,
        "fast_path_share": round(sum(decode_canonical(d) is not None for d in wire) / len(wire), 4),
        "json_strict_us_per_event": round(strict, 2),
        "json_fast_us_per_event": round(fast, 2),
        "json_strict_over_fast": round(strict / fast, 2),
        "parse_event_us_per_event": round(parse, 2),
        "decode_event_us_per_event": round(decode, 2),
        "parse_event_over_decode_event": round(parse / decode, 2),
    }  # fmt: skip
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
