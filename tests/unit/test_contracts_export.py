"""The exporter writes schemas and the catalogue, and `--check` notices when they are stale."""

import json
from pathlib import Path

import pytest

from contracts.events import ALL_EVENTS
from contracts.export import main, render, stale_files

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_committed_docs_are_up_to_date() -> None:
    assert stale_files(DOCS, render()) == [], "run `python -m contracts.export`"


def test_writes_every_schema_and_the_catalogue(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    for cls in ALL_EVENTS:
        text = (tmp_path / "schemas" / f"{cls.type_name()}.v{cls.version()}.json").read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert json.loads(text) == cls.model_json_schema()
    catalogue = (tmp_path / "catalogue.md").read_text(encoding="utf-8")
    assert all(f"### {cls.type_name()} (v{cls.version()})" in catalogue for cls in ALL_EVENTS)
    assert "| `records.raw` |" in catalogue


def test_check_passes_when_fresh(tmp_path: Path) -> None:
    main([str(tmp_path)])
    assert main(["--check", str(tmp_path)]) == 0


def test_check_reports_stale_and_missing_files_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(tmp_path)])
    stale = tmp_path / "schemas" / "PredictionMade.v1.json"
    stale.write_text("{}\n", encoding="utf-8")
    (tmp_path / "catalogue.md").unlink()
    capsys.readouterr()

    assert main(["--check", str(tmp_path)]) == 1

    out = capsys.readouterr().out
    assert "PredictionMade.v1.json" in out and "catalogue.md" in out
    assert "RecordCleaned.v1.json" not in out
    assert stale.read_text(encoding="utf-8") == "{}\n"
    assert not (tmp_path / "catalogue.md").exists()


def test_older_schema_versions_are_left_alone(tmp_path: Path) -> None:
    main([str(tmp_path)])
    old = tmp_path / "schemas" / "PredictionMade.v0.json"
    old.write_text("{}\n", encoding="utf-8")
    assert main(["--check", str(tmp_path)]) == 0
    main([str(tmp_path)])
    assert old.exists()
