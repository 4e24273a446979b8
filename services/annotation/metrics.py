"""Prometheus metrics of the annotation service (beside the kit's)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

TASKS_CHOSEN = Counter(
    "annotation_tasks_chosen_total",
    "Predictions chosen for review, by reason (a task may have several)",
    ["reason"],
)
TASKS_SKIPPED = Counter(
    "annotation_tasks_skipped_total",
    "Predictions the policy chose but the budget (max_open_tasks) left out, by reason",
    ["reason"],
)
TASKS_EXPIRED = Counter(
    "annotation_tasks_expired_total", "Open tasks left unanswered past the policy's task_ttl_s"
)
TASKS_BY_STATE = Gauge("annotation_tasks", "Tasks by state", ["state"])
LABELS = Counter(
    "annotation_labels_total",
    "Completed tasks by what became of them: published, disputed, superseded (a client's label won)",
    ["outcome"],
)
CLIENT_AGREEMENT = Counter(
    "annotation_client_agreement_total",
    "Annotations superseded by a client's label, by whether they agreed with it (annotator quality)",
    ["agreed"],
)
CLIENT_LABELS_SEEN = Counter(
    "annotation_client_labels_seen_total", "Clients' labels naming a prediction, seen on labels.observed"
)
WEBHOOKS = Counter(
    "annotation_webhooks_total", "Webhook calls that reached the route, by outcome", ["outcome"]
)
LABEL_STUDIO_UP = Gauge("annotation_label_studio_up", "1 when the last call to Label Studio succeeded")
THRESHOLD_FALLBACKS = Counter(
    "annotation_threshold_fallbacks_total",
    "Model cards that could not be read: the policy's default threshold was used",
    ["model_name"],
)
PREDICTION_TO_TASK = Histogram(
    "annotation_prediction_to_task_seconds",
    "From a prediction to its task visible in Label Studio",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
ANNOTATION_TO_LABEL = Histogram(
    "annotation_annotation_to_label_seconds",
    "From the annotation that settled a task to its LabelObserved published",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


def set_tasks_by_state(counts: Mapping[str, int]) -> None:
    """The `annotation_tasks{state}` gauge, from the store's counts (refreshed after every change)."""
    for state, count in counts.items():
        TASKS_BY_STATE.labels(state).set(count)
