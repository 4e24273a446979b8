"""Settings: per-service prefix, platform-wide names, and refusal of placeholders in production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from servicekit.auth import ApiKeyRegistry, Role, write_dev_keys
from tests.support import ProbeSettings


def test_prefixed_and_platform_wide_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_HTTP_PORT", "8999")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("HTTP_PORT", "1")  # an unprefixed service field must not leak in
    settings = ProbeSettings()
    assert settings.http_port == 8999
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_wrong_types_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_HTTP_PORT", "eighty")
    with pytest.raises(ValidationError, match="http_port"):
        ProbeSettings()


def test_production_requires_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_ENV", "production")
    with pytest.raises(ValidationError, match="MLOPS_API_KEYS"):
        ProbeSettings()


def test_production_refuses_placeholder_kafka_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOPS_ENV", "production")
    monkeypatch.setenv("MLOPS_API_KEYS", "[]")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        ProbeSettings()


def test_production_refuses_development_keys(tmp_path: Path) -> None:
    _, hashed = write_dev_keys(tmp_path, [("dev-ops", Role.OPS)])
    with pytest.raises(ValueError, match="development keys"):
        ApiKeyRegistry.load(hashed, None, production=True)
    real = json.loads(hashed.read_text())
    real[0]["dev"] = False
    hashed.write_text(json.dumps(real))
    assert len(ApiKeyRegistry.load(hashed, None, production=True)) == 1


def test_secrets_do_not_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2-very-secret")
    settings = ProbeSettings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
