"""The annotation service's pure logic: the sampling policy (reasons, determinism, fairness groups),
resolving a task's annotations (agreement, dispute, ground truth), pseudonyms, and reading webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.annotation.app import load_policy
from services.annotation.domain.policy import (
    Case,
    GroupShares,
    SamplingPolicy,
    age_band,
    groups_of,
    reasons_for,
    sex_of,
    uniform,
)
from services.annotation.domain.resolution import Answer, notes_of, parse_answer, pseudonym, resolve
from services.annotation.domain.webhook import WebhookRejected, parse_webhook, task_id_of

NOBODY = GroupShares(0, {})
QUIET = SamplingPolicy.from_mapping(
    {"audit": {"share": 0}, "fairness": {"share": 0}, "drift": {"share": 0}, "uncertainty": {"margin": 0.05}}
)


def case(pid: str = "p-1", p: float = 0.5, threshold: float = 0.5, **kw: object) -> Case:
    fields: dict[str, object] = {"shadow": False, "in_drift_window": False, "groups": {}} | kw
    return Case(pid, p, threshold, **fields)  # type: ignore[arg-type]


def test_the_shipped_policy_file_is_valid_and_an_empty_one_is_the_defaults(tmp_path: Path) -> None:
    shipped = load_policy(Path("services/annotation/policy.yaml"))
    assert shipped.default_threshold == 0.5 and shipped.annotations_per_task == 1
    assert shipped.fairness.age_band_edges == (25, 41)
    assert load_policy(tmp_path / "absent.yaml") == SamplingPolicy()
    with pytest.raises(ValueError):
        SamplingPolicy.from_mapping({"audit": {"share": 2}})
    with pytest.raises(ValueError):
        SamplingPolicy.from_mapping({"unknown_knob": 1})  # a typo in the file is refused, not ignored


def test_uncertain_means_near_the_model_versions_threshold() -> None:
    assert reasons_for(QUIET, case(p=0.33, threshold=0.3), NOBODY) == ["uncertain"]
    assert reasons_for(QUIET, case(p=0.36, threshold=0.3), NOBODY) == []
    assert reasons_for(QUIET, case(p=0.5, threshold=0.3), NOBODY) == []  # 0.5 is not this version's threshold
    assert reasons_for(QUIET, case(p=0.301, threshold=0.3, shadow=True), NOBODY) == []  # shadows: never


def test_random_choices_are_deterministic_per_prediction_and_reason() -> None:
    assert uniform("p-1", "audit") == uniform("p-1", "audit")
    assert uniform("p-1", "audit") != uniform("p-1", "drift") != uniform("p-2", "audit")
    policy = QUIET.model_copy(update={"audit": QUIET.audit.model_copy(update={"share": 0.3})})
    chosen = [i for i in range(2000) if reasons_for(policy, case(f"p-{i}", p=0.9), NOBODY) == ["audit"]]
    again = [i for i in range(2000) if reasons_for(policy, case(f"p-{i}", p=0.9), NOBODY) == ["audit"]]
    assert chosen == again and 500 < len(chosen) < 700  # about 30%, the same ones every time


def test_a_drift_window_samples_its_share_and_a_case_keeps_every_reason() -> None:
    policy = SamplingPolicy.from_mapping(
        {"audit": {"share": 0}, "fairness": {"share": 0}, "drift": {"share": 1}}
    )
    assert reasons_for(policy, case(p=0.9, in_drift_window=True), NOBODY) == ["drift"]
    assert reasons_for(policy, case(p=0.9, in_drift_window=False), NOBODY) == []
    assert reasons_for(policy, case(p=0.51, in_drift_window=True), NOBODY) == ["uncertain", "drift"]


def test_fairness_groups_are_derived_as_training_does() -> None:
    assert sex_of("male : single") == "male" and sex_of("Female : divorced/separated/married") == "female"
    assert sex_of("") == sex_of(None) == "unknown"
    assert [age_band(a) for a in (19, 24, 25, 40, 41, 70)] == [
        "under_25", "under_25", "25_40", "25_40", "over_40", "over_40",
    ]  # fmt: skip
    assert age_band(None) == age_band("33") == "unknown"
    assert groups_of({"personal_status_and_sex": "male : married/widowed", "age_in_years": 30}) == {
        "sex": "male",
        "age_band": "25_40",
    }
    assert groups_of({"age": 22})["age_band"] == "under_25"


def test_an_under_represented_group_is_sampled_at_its_share() -> None:
    policy = SamplingPolicy.from_mapping(
        {"audit": {"share": 0}, "drift": {"share": 0}, "fairness": {"share": 1, "min_share": 0.2}}
    )
    shares = GroupShares(100, {("sex", "male"): 90, ("sex", "female"): 10, ("age_band", "25_40"): 100})
    groups = {"sex": "female", "age_band": "25_40"}
    assert reasons_for(policy, case(p=0.9, groups=groups), shares) == ["fairness:sex=female"]
    assert reasons_for(policy, case(p=0.9, groups={"sex": "male", "age_band": "25_40"}), shares) == []
    assert reasons_for(policy, case(p=0.9, groups={"sex": "unknown"}), shares) == []  # not a watched group


def answer(aid: int, outcome: str | None, user: int = 1, **kw: object) -> Answer:
    fields: dict[str, object] = {
        "reasoning_wrong": False, "comment": "", "ground_truth": False, "cancelled": False,
        "at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=aid),
    } | kw  # fmt: skip
    return Answer(aid, user, outcome, **fields)  # type: ignore[arg-type]


def test_agreement_dispute_and_ground_truth() -> None:
    assert resolve([answer(1, "bad")], 2).status == "pending"
    assert resolve([answer(1, "bad"), answer(2, "good", cancelled=True)], 2).status == "pending"
    agreed = resolve([answer(1, "bad"), answer(2, "bad", user=2)], 2)
    assert (agreed.status, agreed.label, agreed.agreement) == ("agreed", "bad", 1.0)
    assert agreed.at == datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    disputed = resolve([answer(1, "bad"), answer(2, "good", user=2)], 2)
    assert (disputed.status, disputed.label, disputed.agreement) == ("disputed", None, 0.5)
    settled = resolve([answer(1, "bad"), answer(2, "good", user=2, ground_truth=True), answer(3, "bad")], 2)
    assert (settled.status, settled.label) == ("agreed", "good")
    assert settled.agreement == pytest.approx(1 / 3) and [a.annotation_id for a in settled.agreeing] == [2]


def test_parse_answer_reads_our_labelling_config() -> None:
    raw = {
        "id": 7, "completed_by": 3, "was_cancelled": False, "ground_truth": False,
        "updated_at": "2026-02-01T10:00:00.123456Z",
        "result": [
            {"from_name": "outcome", "type": "choices", "value": {"choices": ["bad"]}},
            {"from_name": "reasoning", "type": "choices", "value": {"choices": ["reasoning wrong"]}},
            {"from_name": "comment", "type": "textarea", "value": {"text": ["ignores " + "x" * 50]}},
        ],
    }  # fmt: skip
    parsed = parse_answer(raw, max_comment_chars=20)
    assert (parsed.annotation_id, parsed.user_id, parsed.outcome, parsed.reasoning_wrong) == (
        7,
        3,
        "bad",
        True,
    )
    assert parsed.comment == "ignores " + "x" * 12 and parsed.at.year == 2026
    assert (
        parse_answer({"id": 8, "result": [{"from_name": "outcome", "value": {"choices": ["maybe"]}}]}).outcome
        is None
    )
    assert notes_of([parsed, answer(9, "good", comment="fine")]) == (
        True,
        f"fine | {parsed.comment}",
    )  # by time


def test_pseudonyms_are_stable_keyed_and_never_the_id() -> None:
    key = b"k" * 32
    name = pseudonym(key, 42)
    assert (
        name == pseudonym(key, 42) and name.startswith("annotator-") and len(name) == len("annotator-") + 16
    )
    assert name != "annotator-42"
    assert name != pseudonym(key, 43) and name != pseudonym(b"other" * 8, 42)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"action": "PROJECT_UPDATED"}', "unsupported_action"),
        (b'{"action": "ANNOTATION_CREATED"}', "no_annotation"),
        (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": "7"}}', "no_annotation"),
        (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 7}}', "no_task"),
        (b"[" * 100_000, "not_json"),
        (
            b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 9223372036854775808, "task": 3}}',
            "no_annotation",
        ),
        (
            b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 7, "task": 99999999999999999999}}',
            "no_task",
        ),
        (
            b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 7, "task": 3, "updated_at": "\\ud800"}}',
            "bad_updated_at",
        ),
    ],
)
def test_a_malformed_webhook_is_refused_with_its_reason(body: bytes, code: str) -> None:
    with pytest.raises(WebhookRejected) as refused:
        parse_webhook(body)
    assert refused.value.code == code
    assert task_id_of(body) is None


def test_a_webhook_names_its_annotation_and_task_only() -> None:
    body = b'{"action": "ANNOTATION_UPDATED", "annotation": {"id": 7, "task": 3, "updated_at": "t1"}, '
    body += b'"task": {"id": 9}}'
    ref = parse_webhook(body)
    assert (ref.annotation_id, ref.task_id, ref.updated_at) == (7, 3, "t1")  # the annotation's own task wins
    assert task_id_of(body) == b"3"
