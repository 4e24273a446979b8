"""Redis of the cluster profile, without a server: its config file, its password, Feast's view of it."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from infra.redis_local import LocalRedis, RedisError, feast_online_store, read_password, render_config
from infra.settings import InfraSettings


def settings(tmp_path: Path, port: int = 6390) -> InfraSettings:
    return InfraSettings(state_dir=tmp_path / "state", redis_port=port)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_config_keeps_redis_on_loopback_behind_a_password_and_writes_every_command_down() -> None:
    lines = render_config(Path("/srv/redis"), 6391, "rSECRET").splitlines()
    for expected in (
        "port 6391",
        "bind 127.0.0.1",
        "protected-mode yes",
        "requirepass rSECRET",
        'dir "/srv/redis"',
        "appendonly yes",
        "appendfsync always",
        "set-proc-title no",
    ):
        assert expected in lines


def test_the_password_lives_in_0600_files_and_never_on_the_command_line(tmp_path: Path) -> None:
    server = LocalRedis(settings(tmp_path))
    config = server.write_config()
    password = read_password(server.settings.secrets_dir)
    assert mode(config) == 0o600 and mode(server.home) == 0o700
    assert mode(server.settings.secrets_dir / "redis.json") == 0o600
    assert f"requirepass {password}" in config.read_text()
    assert not any(password in arg for arg in server.command())
    assert server.marker in server.command()  # what `mlops down` recognises our process by


def test_the_password_is_made_once_and_kept(tmp_path: Path) -> None:
    server = LocalRedis(settings(tmp_path))
    server.write_config()
    first = read_password(server.settings.secrets_dir)
    server.write_config()
    assert read_password(server.settings.secrets_dir) == first
    assert len(first) > 40 and not first.isdigit()


def test_feast_reads_host_port_password_and_timeouts_from_the_online_store_config(tmp_path: Path) -> None:
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    config = settings(tmp_path, port=6399)
    store = feast_online_store(config)
    parsed = RedisOnlineStoreConfig(**store)
    nodes, options = RedisOnlineStore._parse_connection_string(parsed.connection_string)
    assert parsed.redis_type == "redis"
    assert nodes == [{"host": "127.0.0.1", "port": "6399"}]
    assert options["password"] == read_password(config.secrets_dir)  # still a string, not a number
    assert options["socket_timeout"] > 0 and options["socket_connect_timeout"] > 0


def test_the_port_defaults_to_6380_and_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_REDIS_PORT", raising=False)
    assert InfraSettings().redis_port == 6380
    monkeypatch.setenv("MLOPS_REDIS_PORT", "6401")
    assert InfraSettings().redis_port == 6401


def test_a_port_taken_by_a_stranger_is_refused_by_name(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        server = LocalRedis(settings(tmp_path, port=stranger.getsockname()[1]))
        with pytest.raises(RedisError, match="MLOPS_REDIS_PORT"):
            server.start(timeout_s=5)
    assert not server.running()
