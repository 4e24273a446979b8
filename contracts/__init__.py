"""Contracts shared by every service: events (envelope, payloads, topics, parsing, compatibility) and
the registered model's card (`contracts.model`).

Depends on nothing but pydantic and the standard library. The event classes live in
`contracts.events`, topic names in `contracts.topics`.
"""

from contracts.common import ContractModel, FieldError, KafkaCoordinates, Rejection
from contracts.envelope import Event
from contracts.model import Column, FeatureProfile, ModelCard, ModelCardError, read_model_card
from contracts.registry import EVENT_TYPES, ContractError, encode_event, parse_event, register_upcaster
from contracts.topics import TOPICS, TopicSpec, topic_names

__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "Column",
    "ContractError",
    "ContractModel",
    "Event",
    "FeatureProfile",
    "FieldError",
    "KafkaCoordinates",
    "ModelCard",
    "ModelCardError",
    "Rejection",
    "TopicSpec",
    "encode_event",
    "parse_event",
    "read_model_card",
    "register_upcaster",
    "topic_names",
]
