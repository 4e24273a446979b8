"""The deploy and monitoring files agree with the code: compose sets only settings the services read,
ports and Prometheus targets follow infra/supervisor.py, and the dashboard asks for metrics that exist.
No Docker here (deploy/README.md): these checks are what keeps the files from drifting apart."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from infra.bus_access import settings_env
from infra.monitoring import render_config
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, service_of, service_port, with_instances
from servicekit.auth import ApiKeyRegistry, Role
from servicekit.settings import ServiceSettings
from services.drift.settings import DriftSettings

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
DEFAULT_PORTS = {name: service_port(InfraSettings(first_service_port=8101), name) for name in SERVICE_ORDER}
CREDENTIALS = "/run/secrets/mlops_ops_api_key"


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (names are case-insensitive)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, ServiceSettings) and obj.service_name == service
    ]
    assert len(found) == 1, f"one settings class expected in services/{service}/settings.py"
    return found[0]


def targets(path: Path) -> dict[str, str]:
    job = yaml.safe_load(path.read_text())["scrape_configs"][0]
    return {s["labels"]["component"]: t for s in job["static_configs"] for t in s["targets"]}


@pytest.mark.parametrize("service", SERVICE_ORDER)
def test_compose_gives_each_service_only_settings_it_reads_and_its_port(service: str) -> None:
    spec = COMPOSE["services"][service]
    env = {str(k).upper(): str(v) for k, v in spec["environment"].items()}
    unknown = set(env) - env_names(settings_class(service))
    assert not unknown, f"compose sets {sorted(unknown)} for {service}, which its settings do not read"
    port = DEFAULT_PORTS[service]
    prefix = service.upper()
    assert env[f"{prefix}_HTTP_PORT"] == str(port) and env[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
    assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert spec["command"] == [service]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092,kafka-2:9092,kafka-3:9092"  # the three nodes


def test_compose_jobs_that_run_platform_code_use_real_settings() -> None:
    topics_env = {str(k).upper() for k in COMPOSE["services"]["topics"]["environment"]}
    # Besides InfraSettings, `mlops topics` reads the services' KAFKA_* security settings
    # (infra/bus_access.py's _from_environment) to reach a locked-down bus.
    assert topics_env <= env_names(InfraSettings) | set(settings_env("user", "password"))
    assert COMPOSE["services"]["topics"]["command"] == ["topics"]


def test_the_entrypoint_knows_exactly_the_services() -> None:
    script = (DEPLOY / "entrypoint.sh").read_text()
    case = re.search(r"^\s*([a-z|]+)\)\s*$", script, re.MULTILINE)
    assert case is not None and tuple(case.group(1).split("|")) == SERVICE_ORDER


def test_the_image_installs_like_make_install_and_runs_unprivileged() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "-r requirements/lock.txt" in dockerfile and "requirements/post-install.txt" in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_prometheus_targets_follow_the_service_ports_locally_and_in_compose() -> None:
    assert targets(REPO_ROOT / "infra" / "prometheus" / "prometheus.yml") == {
        name: f"127.0.0.1:{port}" for name, port in DEFAULT_PORTS.items()
    }
    assert targets(DEPLOY / "prometheus.yml") == {
        name: f"{name}:{port}" for name, port in DEFAULT_PORTS.items()
    }
    local, compose = (
        yaml.safe_load(p.read_text())["scrape_configs"][0]
        for p in (REPO_ROOT / "infra" / "prometheus" / "prometheus.yml", DEPLOY / "prometheus.yml")
    )
    assert {k: v for k, v in local.items() if k != "static_configs"} == {
        k: v for k, v in compose.items() if k != "static_configs"
    }
    assert local["authorization"] == {"type": "Bearer", "credentials_file": CREDENTIALS}
    assert "mlops_ops_api_key" in COMPOSE["services"]["prometheus"]["secrets"]


def test_the_rendered_config_scrapes_only_running_services_with_the_run_time_key(tmp_path: Path) -> None:
    template = yaml.safe_load((REPO_ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    config = render_config(template, {"audit": 39999}, tmp_path / "key", 1.5)
    job = config["scrape_configs"][0]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:39999"], "labels": {"component": "audit"}}]
    assert job["authorization"]["credentials_file"] == str(tmp_path / "key")
    assert config["global"]["scrape_interval"] == "1500ms" and config["global"]["scrape_timeout"] == "1500ms"
    assert len(template["scrape_configs"][0]["static_configs"]) == len(SERVICE_ORDER)  # template untouched


def defined_metric_names() -> set[str]:
    for module in ("servicekit.metrics", *(f"services.{s}.metrics" for s in SERVICE_ORDER)):
        if (REPO_ROOT / Path(*module.split("."))).with_suffix(".py").exists():
            importlib.import_module(module)
    return set(REGISTRY._names_to_collectors)


def test_the_dashboard_reads_metrics_that_exist_and_is_importable() -> None:
    dashboard: dict[str, Any] = json.loads((REPO_ROOT / "infra" / "grafana" / "dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and "id" not in dashboard
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {
        m for e in exprs for m in re.findall(r"\b((?:mlops|serving|training|ingest|features)_[a-z_]+)", e)
    }
    missing = used - defined_metric_names()
    assert not missing, f"the dashboard reads metrics nobody defines: {sorted(missing)}"
    for needed in ("mlops_consumer_lag", "mlops_audit_chain_length", "serving_model_version"):
        assert needed in used


def test_make_secrets_writes_keys_the_services_accept_in_production(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_secrets", DEPLOY / "make_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "secrets")
    registry = ApiKeyRegistry.load(tmp_path / "secrets" / "api-keys.hashed.json", None, production=True)
    principal = registry.authenticate((tmp_path / "secrets" / "ops-api-key").read_text())
    assert principal is not None and principal.role == Role.OPS
    assert (tmp_path / "secrets" / "api-keys.json").stat().st_mode & 0o077 == 0
    link_secret = tmp_path / "secrets" / "link-signing.secret"
    drift = DriftSettings(environment="production", api_keys_json="[]", link_secret_file=link_secret)
    assert len(drift.link_signing_secret() or "") >= 32
    assert (
        COMPOSE["services"]["drift"]["environment"]["DRIFT_LINK_SECRET_FILE"]
        == "/run/secrets/mlops_link_secret"
    )
    assert set(COMPOSE["services"]["drift"]["secrets"]) == {"mlops_api_keys", "mlops_link_secret"}


def test_compose_runs_the_cluster_profiles_second_instances_each_like_its_first() -> None:
    cluster = InfraSettings(profile="cluster", first_service_port=8101, kafka_bootstrap_servers="kafka:9092")
    instances = [n for n in with_instances(cluster, list(SERVICE_ORDER)) if n != service_of(n)]
    assert instances and {n for n in COMPOSE["services"] if service_of(n) in SERVICE_ORDER} == {
        *SERVICE_ORDER,
        *instances,
    }  # a second instance of each service that scales out, and of no other
    for name in instances:
        service = service_of(name)
        first, second = COMPOSE["services"][service], COMPOSE["services"][name]
        port, prefix = service_port(cluster, name), service.upper()
        env = {str(k).upper(): str(v) for k, v in first["environment"].items()}
        assert {str(k).upper(): str(v) for k, v in second["environment"].items()} == env | {
            f"{prefix}_HTTP_PORT": str(port)
        }
        assert second["ports"] == [f"127.0.0.1:{port}:{port}"]
        rest = ("environment", "ports")
        assert {k: v for k, v in second.items() if k not in rest} == {
            k: v for k, v in first.items() if k not in rest
        }  # same image, command, principal, secrets, state volume and dependencies


def test_features_training_and_serving_keep_the_online_store_in_compose_redis(tmp_path: Path) -> None:
    from infra.compose_redis import ONLINE_STORE_ENV, online_store, write_compose_redis
    from infra.redis_local import read_password
    from infra.redis_local import render_config as local_config

    write_compose_redis(tmp_path)
    write_compose_redis(tmp_path)  # a rerun keeps the password
    password = read_password(tmp_path)
    services = COMPOSE["services"]
    readers = {
        n for n, spec in services.items() if f"./secrets/redis/{ONLINE_STORE_ENV}" in spec.get("env_file", [])
    }
    assert readers == {"features", "features-2", "training", "training-2", "serving", "serving-2"}
    assert all(services[n]["depends_on"]["redis"] == {"condition": "service_healthy"} for n in readers)
    key, _, value = (tmp_path / ONLINE_STORE_ENV).read_text().strip().partition("=")
    assert key in env_names(ServiceSettings)  # what the services' settings read
    assert json.loads(value.strip("'")) == online_store(password)
    assert online_store(password)["connection_string"].startswith("redis:6379,password=")
    server = (tmp_path / "redis.conf").read_text().splitlines()
    assert f"requirepass {password}" in server
    for line in ("appendonly yes", "appendfsync always", 'save ""', "protected-mode yes"):
        assert line in server and line in local_config(tmp_path, 6380, password).splitlines()
    assert "./secrets/redis/redis.conf:/usr/local/etc/redis/redis.conf:ro" in services["redis"]["volumes"]
