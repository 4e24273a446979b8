"""Settings of the features service (env prefix `FEATURES_`; platform-wide values come from the base)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.topics import FEATURES_UPDATED, RECORDS_CLEAN
from servicekit.settings import ServiceSettings


class FeaturesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEATURES_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "features"

    http_port: int = Field(8102, ge=1, le=65535, description="Port of the HTTP API.")
    dataset: str = Field(
        "loan_applications", min_length=1, description="Clean records of other datasets are skipped."
    )
    clean_topic: str = Field(RECORDS_CLEAN, description="Topic RecordCleaned events are read from.")
    updated_topic: str = Field(FEATURES_UPDATED, description="Topic FeaturesUpdated events go to.")
    group_id: str = Field("features", min_length=1, description="Kafka consumer group of the service.")
    ledger_path: Path | None = Field(
        None, description="SQLite ledger of pushed event ids. Default: <state_dir>/features/ledger.db."
    )

    @property
    def consumer_group(self) -> str:
        return self.group_id

    @property
    def resolved_ledger_path(self) -> Path:
        return (self.ledger_path or self.service_dir / "ledger.db").resolve()
