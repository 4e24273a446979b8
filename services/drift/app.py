"""Composition root of the drift service: state store, watch, one batch subscription to the three
streams it watches (records.clean, predictions.made, labels.observed, one consumer), the outbox flush at
start, the Evidently reports (model.trained and model.promoted subscriptions, the report worker and
its schedule), and the ops routes. Several instances run as one active and standbys
(servicekit/standby.py): only the holder of the active lease consumes and reports."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from contracts.events import (
    DriftDetected,
    LabelObserved,
    ModelPromoted,
    ModelTrained,
    PredictionMade,
    RecordCleaned,
)
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import Subscriptions
from servicekit.signed_links import LinkSigner, random_secret
from servicekit.standby import FileLease, Standby
from servicekit.tasks import BackgroundTasks, retrying
from services.drift import browser, routes
from services.drift.adapters.evidently_report import load_evidently
from services.drift.adapters.report_store import ReportStore
from services.drift.adapters.store import DriftStore
from services.drift.domain.watch import WatchConfig
from services.drift.handlers import DriftService, ReportLinks
from services.drift.reports import ReportService
from services.drift.settings import DriftSettings

log = logging.getLogger(__name__)


def watch_config(settings: DriftSettings) -> WatchConfig:
    return WatchConfig(
        numeric=tuple(settings.numeric_features),
        categorical=tuple(settings.categorical_features),
        reference_size=settings.reference_size,
        window_size=settings.window_size,
        block=settings.block,
        mean_shift_z=settings.mean_shift_z,
        numeric_detector=settings.numeric_detector,
        cusum_reference_size=settings.cusum_reference_size,
        cusum_shift=settings.cusum_shift,
        false_alarms_per_100k=settings.false_alarms_per_100k,
        chi_square_reference=settings.chi_square_reference,
        chi_square_window=settings.chi_square_window,
        chi_square_alpha=settings.chi_square_alpha,
        concept_detector=settings.concept_detector,
        concept_confidence=settings.concept_confidence,
        concept_shift=settings.concept_shift,
        concept_threshold=settings.concept_threshold,
        warm_up=settings.warm_up,
        confirmations=settings.confirmations,
        debounce=settings.debounce,
        cooldown=settings.cooldown,
        join_max_pending=settings.join_max_pending,
        join_ttl_s=settings.join_ttl_s,
        positive_label=settings.positive_label,
        positive_decision=settings.positive_decision,
        estimate_window=settings.estimate_window,
        estimate_min_labelled=settings.estimate_min_labelled,
        estimate_drop_limit=settings.estimate_drop_limit,
        estimate_windows_kept=settings.estimate_windows_kept,
    )


def report_service(settings: DriftSettings) -> ReportService:
    return ReportService(
        ReportStore(settings.resolved_state_path, settings.reports_dir, settings.reference_max),
        numeric=settings.numeric_features,
        categorical=settings.categorical_features,
        model_name=settings.model_name,
        base_url=settings.base_url,
        window=settings.report_window,
        reference_max=settings.reference_max,
        kept=settings.reports_kept,
        interval_s=settings.report_interval_s,
    )


async def preload_reports() -> None:
    """Load what the first report needs (Evidently: about 3 s of CPU and 90 MB, once per process) as
    the process starts, on the active instance and the standby alike, and before the kit freezes the
    heap: not inside the first report, which a promotion asks for while the stream runs and which would
    come seconds late. A library that fails to load stops nothing: the report that needs it says why."""
    try:
        await asyncio.to_thread(load_evidently)
    except Exception:
        log.exception("the report library could not be loaded ahead of the first report")


def link_signer(settings: DriftSettings) -> LinkSigner:
    secret = settings.link_signing_secret()
    if secret is None:  # development only (the settings refuse this in production)
        log.info("no link secret configured: signed report links last as long as this process")
        secret = random_secret()
    return LinkSigner(secret, ttl_s=settings.link_ttl_s)


def create_app(settings: DriftSettings | None = None) -> FastAPI:
    settings = settings or DriftSettings()
    store = DriftStore(settings.resolved_state_path, settings.records_kept, settings.reference_max)
    reports = report_service(settings)
    broker = make_broker(settings)
    publisher = EventPublisher(broker, settings.service_name)
    subscriptions = Subscriptions(broker, publisher, settings.service_name, settings.max_handler_attempts)

    async def publish(body: bytes) -> None:
        event = DriftDetected.model_validate_json(body)
        await publisher.publish(event, topic=settings.drift_topic)

    drift = DriftService(
        store,
        watch_config(settings),
        publish=publish,
        reject=subscriptions.refuse,
        dataset=settings.dataset,
        model_name=settings.model_name,
        producer=settings.service_name,
        reports=ReportLinks(reports.url, reports.wake),
        streams={
            settings.records_topic: RecordCleaned,
            settings.predictions_topic: PredictionMade,
            settings.labels_topic: LabelObserved,
        },
    )
    # ONE consumer reads the three streams (one fetch loop, one save per batch for all of them). A
    # stack that ran the old layout (a group per stream, `<group>.<topic>`) upgrades in place: the new
    # group starts at the earliest record each topic holds, and the offsets saved with the state skip
    # whatever was already handled; the old groups idle until the broker expires them.
    subscriptions.on_raw(
        settings.records_topic,
        settings.predictions_topic,
        settings.labels_topic,
        group_id=settings.consumer_group,
        batch=True,
        max_records=settings.batch_records,
        start="earliest",
    )(drift.on_streams)
    group = settings.consumer_group
    trained, promoted = settings.trained_topic, settings.promoted_topic
    subscriptions.on_event(trained, ModelTrained, group_id=f"{group}.{trained}")(reports.on_trained)
    subscriptions.on_event(promoted, ModelPromoted, group_id=f"{group}.{promoted}")(reports.on_promoted)

    async def store_ready() -> bool:
        return await asyncio.to_thread(store.ping) and await asyncio.to_thread(reports.store.ping)

    tasks = BackgroundTasks()
    # Whatever a previous run saved but did not send goes out once the broker is up.
    tasks.add(
        "drift-outbox",
        lambda: retrying(drift.flush_outbox, what="drift outbox flush", attempts=60, first_wait_s=0.2),
    )

    async def close() -> None:
        store.close()
        reports.store.close()

    app = create_service_app(
        settings,
        broker,
        title="Drift service",
        subscriptions=subscriptions,
        publishes=(DriftDetected,),
        readiness_checks={"state": store_ready},
        on_startup=[preload_reports],
        before_broker_stops=[reports.stop],
        tasks=tasks,
        on_shutdown=[close],
        # One instance consumes: its detectors judge the whole stream. Another stands by and takes
        # over, from the state the last one saved, when it stops or dies (docs/operations.md).
        standby=Standby(
            settings.service_name,
            FileLease(settings.resolved_state_path.parent / "active.lease"),
            on_active=[drift.reload, reports.start],
            poll_s=settings.standby_poll_s,
        ),
    )
    app.state.drift, app.state.reports = drift, reports
    app.state.link_signer = link_signer(settings)
    browser.install(app)  # first: its fixed paths would match routes.py's `/reports/{report_id}`
    routes.install(app)
    return app
