"""The platform's AsyncAPI 3.0 document, generated from the services' FastStream apps.

FastStream describes each service's channels and operations from its broker. Our subscribers take
raw messages (so bad input can be dead-lettered instead of crashing the parser), which FastStream
cannot introspect; the payload schemas therefore come from `contracts/`, which is what the
subscriber validates against. Topics no service touches yet are documented from the contracts too.

    python -m infra.asyncapi [--check] [PATH]     (default docs/asyncapi.json)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from contracts.events import ALL_EVENTS
from contracts.topics import TOPICS
from infra.generated import render, sync
from servicekit.consumer import Subscriptions

REF = "#/components/schemas/{model}"


def discover_services() -> list[tuple[str, KafkaBroker, Subscriptions]]:
    """Each service's app module builds its broker without connecting (see services/README.md)."""
    from infra.supervisor import existing_services

    found = []
    for name in existing_services():
        app = importlib.import_module(f"services.{name}.app").create_app()
        found.append((name, app.state.broker, app.state.subscriptions))
    return found


def _event_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for event in ALL_EVENTS:
        schema = event.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[event.__name__] = schema
    return schemas


def _message(event_types: tuple[str, ...]) -> dict[str, Any]:
    refs = [{"$ref": REF.format(model=name)} for name in event_types]
    payload = (
        refs[0]
        if len(refs) == 1
        else {"oneOf": refs}
        if refs
        else {
            "type": "object",
            "description": "Any JSON object; validated by the consumer against the dataset schema.",
        }
    )
    return {"contentType": "application/json", "payload": payload}


def build_document(services: list[tuple[str, KafkaBroker, Subscriptions]]) -> dict[str, Any]:
    brokers = [broker for _, broker, _ in services]
    doc: dict[str, Any] = (
        AsyncAPI(
            *brokers,
            title="mlops-platform",
            version="1",
            schema_version="3.0.0",
            description="Every topic of the platform, with the services that send and receive on it.",
        )
        .to_specification()
        .to_jsonable()
        if brokers
        else {"asyncapi": "3.0.0", "info": {"title": "mlops-platform", "version": "1"}}
    )
    doc.setdefault("channels", {})
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(_event_schemas())
    messages = components.setdefault("messages", {})
    contract_types = {spec.name: spec.event_types for spec in TOPICS}
    for service, _, subscriptions in services:
        for sub in subscriptions.registered:
            for topic in sub.topics:
                channel = doc["channels"].get(f"{service}:{topic}", {})
                # A raw subscription takes whatever its topic carries by contract.
                names = tuple(t.__name__ for t in sub.event_types) or contract_types.get(topic, ())
                for ref in channel.get("messages", {}).values():
                    name = ref["$ref"].rsplit("/", 1)[-1]
                    messages[name]["payload"] = _message(names)["payload"]
    used = {channel["address"] for channel in doc["channels"].values()}
    for spec in TOPICS:
        if spec.name in used:
            continue
        message_name = f"{spec.name}:Message"
        messages[message_name] = {"title": message_name, **_message(spec.event_types)}
        doc["channels"][spec.name] = {
            "address": spec.name,
            "description": f"{spec.description} Key: {spec.key}. No service in this repository uses it yet.",
            "messages": {"Message": {"$ref": f"#/components/messages/{message_name}"}},
        }
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", default="docs/asyncapi.json", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if the committed document is out of date")
    args = parser.parse_args(argv)
    return sync({args.path: render(build_document(discover_services()))}, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
