"""One error root for the annotation service, mapped to HTTP statuses / dead letters only at the edge."""

from __future__ import annotations

from servicekit.errors import ServiceError


class AnnotationError(ServiceError):
    """Root of every annotation error. `status` is the HTTP status the edge maps it to."""

    code = "annotation_error"


class UnknownTask(AnnotationError):
    """No task was made for that prediction (it was not chosen, or not seen)."""

    status = 404
    code = "unknown_task"


class MalformedWebhook(AnnotationError):
    """A webhook that names no annotation of one of our tasks. Its `code` is the precise reason."""

    status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ReplayedWebhook(AnnotationError):
    """The same annotation (id and update time) was already delivered by a webhook."""

    status = 409
    code = "replayed"


class WebhookTooLarge(AnnotationError):
    status = 413
    code = "too_large"


class LabelStudioUnavailable(AnnotationError):
    """Label Studio did not answer, or answered with an error (the caller retries)."""

    status = 503
    code = "label_studio_unavailable"


class ProjectGone(LabelStudioUnavailable):
    """Label Studio no longer has the project the service made (someone deleted it): it is made again."""

    code = "label_studio_project_gone"


class BusUnavailable(AnnotationError):
    """The webhook could not be appended to its Kafka topic; Label Studio's call fails, polling covers it."""

    status = 503
    code = "bus_unavailable"
