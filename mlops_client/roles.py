"""The four seats at the platform, one class per role, each holding its API key and the URLs of the
services that role calls:

- `Producer`: submits records (ingest `POST /records`) and ground truth (serving `POST /labels`).
- `Client`: scores applications (serving), sends an outcome when it is known, asks why (explain).
- `Ops`: drift monitors, online quality and reports (drift), training runs and the retraining switch
  (training), what is served (serving).
- `Auditor`: the audit trail: verification, summary, events, the lineage of a prediction.

Build one with explicit URLs and a key (a real deployment), from the environment (`from_env()`, see
`mlops_client.settings`), or from the local dev stack (`from_stack()`, or `mlops_client.connect()` for
all four). Every method returns a typed answer or raises `MlopsError`. Close a role (or use it in a
`with` block) to release its connections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from mlops_client import models
from mlops_client.errors import MlopsError
from mlops_client.http import Service
from mlops_client.settings import ClientSettings, stack_urls_and_key

Label = Literal["good", "bad"]
FeatureValues = Mapping[str, int | float | str]


class Role:
    """A seat holding one key, with one `Service` per service it calls (named as in `SERVICES`)."""

    ROLE: ClassVar[str]
    SERVICES: ClassVar[tuple[str, ...]]

    def __init__(self, key: str, urls: Mapping[str, str], **options: Any) -> None:
        missing = [name for name in self.SERVICES if not urls.get(name)]
        if missing:
            raise ValueError(f"{type(self).__name__} needs the URL of {', '.join(missing)}")
        self.services = {name: Service(urls[name], key, **options) for name in self.SERVICES}

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """Key and URLs from `MLOPS_CLIENT_*` variables (see `ClientSettings`), for a real deployment."""
        settings = ClientSettings()
        return cls(settings.api_key.get_secret_value(), settings.urls(), **options)

    @classmethod
    def from_stack(
        cls, state_dir: Path | str | None = None, *, key_name: str | None = None, **options: Any
    ) -> Self:
        """The local dev stack's URLs and this role's development key (`dev-<role>`), read as the
        `mlops` CLI reads them (`MLOPS_STATE_DIR`, `MLOPS_FIRST_SERVICE_PORT`, ...)."""
        urls, key = stack_urls_and_key(state_dir, key_name or f"dev-{cls.ROLE}")
        return cls(key, urls, **options)

    def ready(self) -> dict[str, bool]:
        """Each service's `/ready` probe: whether it answers 200."""
        return {name: service.ready() for name, service in self.services.items()}

    def close(self) -> None:
        for service in self.services.values():
            service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        urls = ", ".join(f"{name}={s.base_url}" for name, s in self.services.items())
        return f"{type(self).__name__}({urls})"


class _Labels(Role):
    def label(self, prediction_id: str, label: Label, entity_id: str | None = None) -> models.LabelAccepted:
        """The ground truth of a prediction serving made (404: unknown prediction, 409: another entity
        or another label already)."""
        body = {"prediction_id": prediction_id, "label": label}
        if entity_id is not None:
            body["entity_id"] = entity_id
        return models.LabelAccepted.model_validate(self.services["serving"].post("/labels", body))


class Producer(_Labels):
    ROLE = "producer"
    SERVICES = ("ingest", "serving")

    def send(self, records: Sequence[Mapping[str, Any]]) -> models.RecordsAccepted:
        """Append a batch of records to the raw topic, all or nothing: one invalid record refuses the
        batch (422, `MlopsError.errors` has a reason per record); each receipt says where it landed."""
        answer = self.services["ingest"].post("/records", [dict(record) for record in records])
        return models.RecordsAccepted.model_validate(answer)


class Client(_Labels):
    ROLE = "client"
    SERVICES = ("serving", "explain")

    def predict(
        self, entity_id: str | None = None, *, features: FeatureValues | None = None
    ) -> models.Prediction:
        """Score one application, by entity key (features read from the online store) or by its
        feature values. 503 (`MlopsError.retryable`): no champion is loaded yet."""
        body = _instance(entity_id, features)
        return models.Prediction.model_validate(self.services["serving"].post("/predict", body))

    def predict_many(self, instances: Sequence[str | FeatureValues]) -> list[models.Prediction]:
        """Score a batch: each instance an entity key or a mapping of feature values."""
        body = [_instance(i, None) if isinstance(i, str) else _instance(None, i) for i in instances]
        answer = self.services["serving"].post("/predict", {"instances": body})
        return [models.Prediction.model_validate(item) for item in answer]

    def model(self) -> models.ModelStatus:
        """The champion (and shadow) serving has loaded."""
        return models.ModelStatus.model_validate(self.services["serving"].get("/model"))

    def explain(self, prediction_id: str, methods: Sequence[str] | None = None) -> models.Explanation:
        """Why a prediction came out as it did (404 until explain has seen it on predictions.made)."""
        params = {"methods": ",".join(methods)} if methods else None
        answer = self.services["explain"].get(f"/explain/{prediction_id}", params)
        return models.Explanation.model_validate(answer)


class Ops(Role):
    ROLE = "ops"
    SERVICES = ("drift", "training", "serving")

    def detectors(self) -> models.Detectors:
        """Every drift monitor's state, the label join and each model version's online quality."""
        return models.Detectors.model_validate(self.services["drift"].get("/detectors"))

    def online_quality(self) -> list[models.OnlineQuality]:
        """Each served version's rolling accuracy, AUC, Brier score and calibration error."""
        return self.detectors().online_quality

    def performance_estimates(self) -> list[models.PerformanceEstimate]:
        """Each served version's performance estimated before labels, and how the labels judged it."""
        return self.detectors().performance_estimates

    def reports(self, limit: int = 50) -> models.ReportListing:
        """Evidently reports, newest first, with their summaries."""
        return models.ReportListing.model_validate(self.services["drift"].get("/reports", {"limit": limit}))

    def report(self, report_id: str) -> dict[str, Any]:
        """One report's summary and links (its HTML and Evidently JSON)."""
        answer: dict[str, Any] = self.services["drift"].get(f"/reports/{report_id}")
        return answer

    def report_links(self, report_id: str | None = None, ttl_s: int | None = None) -> models.ReportLinks:
        """Short-lived signed links to open in a browser (no key needed there): the reports' index,
        and `report_id`'s page when given. Anyone holding a link can open that page until it ends."""
        answer = self.services["drift"].get("/reports/links", {"report": report_id, "ttl_s": ttl_s})
        return models.ReportLinks.model_validate(answer)

    def train(
        self,
        reason: Literal["manual", "schedule"] = "manual",
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        ignore_change_points: bool = False,
    ) -> models.TrainingRequested:
        """Ask for a training run; its outcome follows at `latest_run()` under the request's event id."""
        body: dict[str, Any] = {"reason": reason, "ignore_change_points": ignore_change_points}
        if start is not None or end is not None:
            body["window"] = {"start": _iso(start), "end": _iso(end)}
        return models.TrainingRequested.model_validate(self.services["training"].post("/train", body))

    def latest_run(self) -> models.RunOutcome | None:
        """The outcome of the last training run; None before the first one has finished."""
        try:
            answer = self.services["training"].get("/runs/latest")
        except MlopsError as error:
            if error.status == 404:
                return None
            raise
        return models.RunOutcome.model_validate(answer)

    def retraining(self) -> models.RetrainingStatus:
        """Whether automatic retraining is paused, its policy, its last drift decisions and the schedule."""
        return models.RetrainingStatus.model_validate(self.services["training"].get("/retraining"))

    def pause_retraining(self, note: str | None = None) -> models.RetrainingStatus:
        """Switch automatic retraining (drift and schedule) off, across restarts; `train()` still works."""
        answer = self.services["training"].post("/retraining/pause", {"note": note})
        return models.RetrainingStatus.model_validate(answer)

    def resume_retraining(self, note: str | None = None) -> models.RetrainingStatus:
        """Switch automatic retraining (drift and schedule) back on."""
        answer = self.services["training"].post("/retraining/resume", {"note": note})
        return models.RetrainingStatus.model_validate(answer)

    def model(self) -> models.ModelStatus:
        """The champion (and shadow) serving has loaded."""
        return models.ModelStatus.model_validate(self.services["serving"].get("/model"))


class Auditor(Role):
    ROLE = "auditor"
    SERVICES = ("audit",)

    def verify(self) -> models.Verification:
        """Recompute the hash chain and hold it against the signed checkpoints and Kafka."""
        return models.Verification.model_validate(self.services["audit"].get("/verify"))

    def summary(self) -> models.AuditSummary:
        """Rows by event type, the chain's length and head."""
        return models.AuditSummary.model_validate(self.services["audit"].get("/summary"))

    def events(
        self, *, after: int = 0, limit: int | None = None, **filters: str | datetime
    ) -> models.EventPage:
        """One page of recorded events; filters: event_type, topic, entity_id, model_name,
        model_version, correlation_id, prediction_id, since, until (times with a timezone)."""
        params: dict[str, Any] = {k: _iso(v) if isinstance(v, datetime) else v for k, v in filters.items()}
        answer = self.services["audit"].get("/events", params | {"after": after, "limit": limit})
        return models.EventPage.model_validate(answer)

    def lineage(self, prediction_id: str) -> models.Lineage:
        """Prediction -> model -> promotion -> training run -> data window -> what asked for it."""
        return models.Lineage.model_validate(self.services["audit"].get(f"/lineage/{prediction_id}"))


def _instance(entity_id: str | None, features: FeatureValues | None) -> dict[str, Any]:
    if (entity_id is None) == (features is None):
        raise ValueError("give exactly one of entity_id or features")
    return {"entity_id": entity_id} if entity_id is not None else {"features": dict(features or {})}


def _iso(moment: datetime | None) -> str | None:
    if moment is not None and moment.tzinfo is None:
        raise ValueError("times need a timezone (e.g. datetime.now(UTC))")
    return None if moment is None else moment.isoformat()
