"""Feast's file registry is rewritten by a rename (feature_repo/store.py): a reader in another process
sees the old registry or the new one, whole, never a file truncated for an in-place rewrite."""

from __future__ import annotations

from pathlib import Path

from feature_repo import FeatureStoreSettings, open_store
from feature_repo.names import FEATURE_VIEW


def test_applying_again_replaces_the_registry_file_whole(tmp_path: Path) -> None:
    settings = FeatureStoreSettings(tmp_path / "repo")
    open_store(settings, apply=True)
    registry = settings.repo_dir / "registry.db"
    before = registry.stat().st_ino
    store = open_store(settings, apply=True)  # a second instance starting: it applies again
    after = registry.stat().st_ino
    assert after != before  # a new file renamed into place, not the old one truncated and rewritten
    assert not list(registry.parent.glob(".registry.db.*"))  # no temporary file left
    assert store.get_feature_view(FEATURE_VIEW).name == FEATURE_VIEW  # and it reads back whole
