"""Issue 17, item 8: the command-line tools fail cleanly. Every flag is checked before anything is
sent (a one-line error naming the flag, exit 2), usage names what the person typed (`mlops
produce`), `mlops --version` answers, and an unreachable broker is one line, not a traceback."""

from __future__ import annotations

import argparse

import pytest

from infra import cli
from servicekit.cli_args import PROG_ENV, non_negative_float, positive_int
from workbench import demo_producer
from workbench.demo_data import drift_features


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "-5"], "argument --rate: must be zero or more, got -5"),
        (["--rows", "-1"], "argument --rows: must be positive, got -1"),
        (["--rows", "0"], "argument --rows: must be positive, got 0"),
        (["--rows", "1e3"], "argument --rows: not a whole number: '1e3'"),
        (["--bad-every", "-2"], "argument --bad-every: must be zero or more, got -2"),
        (["--rate", "nan"], "argument --rate: not a finite number: 'nan'"),
        (["--label-delay-s", "inf"], "argument --label-delay-s: not a finite number: 'inf'"),
        (["--drift-factor", "0"], "argument --drift-factor: must be positive, got 0"),
        (["--drift-feature", "nonexistent"], "--drift-feature 'nonexistent' is not a numeric feature"),
        (["--drift-feature", "purpose"], "--drift-feature 'purpose' is not a numeric feature"),
        (["--drift-kind", "covariate", "--rows", "10", "--drift-at", "10"], "no row would drift"),
    ],
)
def test_bad_producer_flags_are_refused_before_anything_is_sent(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROG_ENV, "mlops produce")
    with pytest.raises(SystemExit) as exit_:
        demo_producer.parse_args(argv)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2
    assert error.startswith("mlops produce: error: ") and message in error, error


def test_sensible_producer_flags_pass_and_zero_keeps_its_documented_meaning() -> None:
    args = demo_producer.parse_args(["--rate", "0", "--bad-every", "0", "--label-delay-s", "0"])
    assert (args.rate, args.bad_every, args.label_delay_s) == (0.0, 0, 0.0)  # fast; never; at once
    assert "credit_amount" in drift_features() and "purpose" not in drift_features()


def test_an_unreachable_broker_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = demo_producer.main(["--rows", "2", "--bootstrap", "127.0.0.1:1", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Kafka at 127.0.0.1:1"), captured.err
    assert "Traceback" not in captured.err


def test_mlops_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("mlops 0.")


def test_the_shared_types_refuse_what_they_should() -> None:
    assert positive_int("3") == 3 and non_negative_float("0") == 0.0
    for parse, text in ((positive_int, "0"), (positive_int, "2.5"), (non_negative_float, "-0.1")):
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be|not a"):
            parse(text)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLOPS_PROFILE", "bogus", "MLOPS_PROFILE: Input should be 'local' or 'cluster'"),
        ("MLOPS_INSTANCES", "0", "MLOPS_INSTANCES: Input should be greater than or equal to 1"),
        ("MLOPS_INSTANCES", "many", "MLOPS_INSTANCES: Input should be a valid integer"),
        ("MLOPS_KAFKA_SECURITY", "none", "MLOPS_KAFKA_SECURITY: Input should be 'scram' or 'off'"),
        ("MLOPS_KAFKA_PORT", "99999", "MLOPS_KAFKA_PORT: Input should be less than or equal to 65535"),
        ("MLOPS_POSTGRES_PORT", "postgres", "MLOPS_POSTGRES_PORT: Input should be a valid integer"),
        ("MLOPS_MLFLOW_PORT", "0", "MLOPS_MLFLOW_PORT: Input should be greater than or equal to 1"),
        ("MLOPS_REDIS_PORT", "6380.5", "MLOPS_REDIS_PORT: Input should be a valid integer"),
    ],
)
def test_a_bad_stack_setting_is_one_line_and_exit_2(
    name: str, value: str, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    assert cli.main(["status"]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_an_unknown_profile_flag_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["up", "--profile", "production"])
    assert exit_.value.code == 2
    assert "argument --profile: invalid choice: 'production'" in capsys.readouterr().err
