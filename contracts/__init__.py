"""Event contracts shared by every service: envelope, payloads, topics, parsing and compatibility.

Depends on nothing but pydantic and the standard library. The event classes live in
`contracts.events`, topic names in `contracts.topics`.
"""

from contracts.common import ContractModel, FieldError, KafkaCoordinates, Rejection
from contracts.envelope import Event
from contracts.registry import EVENT_TYPES, ContractError, encode_event, parse_event, register_upcaster
from contracts.topics import TOPICS, TopicSpec, topic_names

__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "ContractError",
    "ContractModel",
    "Event",
    "FieldError",
    "KafkaCoordinates",
    "Rejection",
    "TopicSpec",
    "encode_event",
    "parse_event",
    "register_upcaster",
    "topic_names",
]
