"""The benches of the decoding fast path, of the online store's WAL mode, of the features' online
write and of the audit's sealing refuse nonsense arguments with a usage error (exit code 2) instead of
a traceback after minutes of setup."""

from __future__ import annotations

import pytest

from bench import audit_sealing, event_decoding, feature_push, online_store_reads


@pytest.mark.parametrize(
    "argv",
    [
        ["--runs", "0"],
        ["--runs", "-3"],
        ["--applications", "0"],
        ["--applications", "many"],
        ["--runs", "1.5"],
    ],
)
def test_event_decoding_refuses_nonsense(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        event_decoding.parse_args(argv)
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err  # the usage error names the option


@pytest.mark.parametrize(
    "argv",
    [["--records", "0"], ["--records", "199"], ["--runs", "0"], ["--records", "lots"], ["--runs", "-1"]],
)
def test_online_store_reads_refuses_nonsense(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        online_store_reads.parse_args(argv)
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--records", "0"], ["--batch", "0"], ["--runs", "0"], ["--batch", "big"], ["--records", "-5"],
     ["--reads", "0"], ["--reads", "-1"], ["--reads", "many"]],
)  # fmt: skip
def test_feature_push_refuses_nonsense(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        feature_push.parse_args(argv)
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err


def test_the_defaults_are_accepted() -> None:
    assert (feature_push.parse_args([]).records, feature_push.parse_args([]).batch) == (10_000, 200)
    assert (event_decoding.parse_args([]).applications, event_decoding.parse_args([]).runs) == (2000, 5)
    args = online_store_reads.parse_args(["--records", "200", "--runs", "1"])
    assert (args.records, args.runs) == (200, 1)


@pytest.mark.parametrize(
    "argv",
    [["--applications", "0"], ["--events", "0"], ["--subjects", "-1"], ["--runs", "0"],
     ["--applications", "many"], ["--runs", "2.5"]],
)  # fmt: skip
def test_audit_sealing_refuses_nonsense(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        audit_sealing.parse_args(argv)
    assert exited.value.code == 2
    assert "--" in capsys.readouterr().err
    assert audit_sealing.parse_args([]).applications == 10_000
