"""From a task's annotations to a label: the answers, their agreement, disputes, ground truth.

A task is complete once it has `required` answers that were not cancelled. All of them agree: the
label is theirs (agreement 1.0). They disagree: the task is disputed and nothing is published, until
someone marks one annotation `ground_truth` in Label Studio, which settles the dispute in its favour
(agreement is then the share of answers that gave that outcome). Annotators are named by pseudonym
only: an HMAC of Label Studio's user id under a key of the service's own.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

OUTCOMES = ("good", "bad")
REASONING_WRONG = "reasoning wrong"
PSEUDONYM_PREFIX = "annotator-"


@dataclass(frozen=True)
class Answer:
    """One annotation, as far as the platform reads it."""

    annotation_id: int
    user_id: int | None
    outcome: str | None
    reasoning_wrong: bool
    comment: str
    ground_truth: bool
    cancelled: bool
    at: datetime


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return datetime.now(UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _user(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_answer(annotation: Mapping[str, Any], max_comment_chars: int = 2000) -> Answer:
    """An annotation of Label Studio's API (`GET /api/tasks/{id}/annotations/`) for our labelling config."""
    outcome: str | None = None
    reasoning_wrong = False
    comment = ""
    results = annotation.get("result")
    for item in results if isinstance(results, list) else []:
        if not isinstance(item, dict):
            continue
        found = item.get("value")
        value: dict[str, Any] = found if isinstance(found, dict) else {}
        name = item.get("from_name")
        if name == "outcome":
            choices = value.get("choices") or []
            chosen = choices[0] if isinstance(choices, list) and choices else None
            outcome = chosen if chosen in OUTCOMES else None
        elif name == "reasoning":
            choices = value.get("choices") or []
            reasoning_wrong = isinstance(choices, list) and REASONING_WRONG in choices
        elif name == "comment":
            texts = value.get("text") or []
            if isinstance(texts, list):
                comment = " ".join(str(t) for t in texts)[:max_comment_chars]
    annotation_id = annotation.get("id")
    return Answer(
        annotation_id=annotation_id if isinstance(annotation_id, int) else -1,
        user_id=_user(annotation.get("completed_by")),
        outcome=outcome,
        reasoning_wrong=reasoning_wrong,
        comment=comment,
        ground_truth=bool(annotation.get("ground_truth")),
        cancelled=bool(annotation.get("was_cancelled")),
        at=_time(annotation.get("updated_at") or annotation.get("created_at")),
    )


@dataclass(frozen=True)
class Resolution:
    """`pending` (not enough answers yet), `agreed` (a label), or `disputed` (no label)."""

    status: Literal["pending", "agreed", "disputed"]
    label: str | None = None
    agreement: float | None = None
    agreeing: tuple[Answer, ...] = field(default_factory=tuple)
    answers: tuple[Answer, ...] = field(default_factory=tuple)

    @property
    def at(self) -> datetime | None:
        """When the label became known: the latest of the answers that gave it."""
        return max((a.at for a in self.agreeing), default=None)


def resolve(answers: Iterable[Answer], required: int) -> Resolution:
    valid = tuple(a for a in answers if not a.cancelled and a.outcome is not None)
    if len(valid) < max(required, 1):
        return Resolution("pending", answers=valid)
    counts = Counter(a.outcome for a in valid)
    truths = sorted((a for a in valid if a.ground_truth), key=lambda a: (a.at, a.annotation_id))
    if truths:
        label = truths[-1].outcome
    elif len(counts) == 1:
        label = valid[0].outcome
    else:
        top = counts.most_common()
        share = top[0][1] / len(valid)
        return Resolution("disputed", agreement=share, answers=valid)
    agreeing = tuple(a for a in valid if a.outcome == label)
    return Resolution("agreed", label, len(agreeing) / len(valid), agreeing, valid)


def notes_of(answers: Iterable[Answer]) -> tuple[bool, str]:
    """The "reasoning wrong" flag (any answer raised it) and the comments, newest last."""
    listed = sorted(answers, key=lambda a: (a.at, a.annotation_id))
    flagged = any(a.reasoning_wrong for a in listed if not a.cancelled)
    comments = [a.comment for a in listed if a.comment and not a.cancelled]
    return flagged, " | ".join(comments)


def pseudonym(key: bytes, user_id: int | None) -> str:
    """`annotator-` + the first 16 hex digits of HMAC-SHA256(key, user id): stable, never the id."""
    digest = hmac.new(key, str(user_id if user_id is not None else "unknown").encode(), hashlib.sha256)
    return PSEUDONYM_PREFIX + digest.hexdigest()[:16]


def pseudonyms(key: bytes, answers: Iterable[Answer], limit: int = 20) -> list[str]:
    names = dict.fromkeys(pseudonym(key, a.user_id) for a in answers)
    return list(names)[:limit]
