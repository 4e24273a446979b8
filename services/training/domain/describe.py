"""How a training run and a registered version read in MLflow's UI: a run name that says what started
it, and a version description with the gate's verdict and intervals. A data scientist reads these
first; the details stay in the run's tags, metrics and gate/evidence.json."""

from __future__ import annotations

from contracts.events import GateEvidence


def run_name(tags: dict[str, str]) -> str:
    """What started the run, for MLflow's run list (instead of a random `traveling-panda-951`):
    `drift retrain by training:drift, data to 2026-12-04T18:30`."""
    reason = {"drift": "drift retrain", "manual": "manual run", "schedule": "scheduled run"}.get(
        tags.get("reason", ""), tags.get("reason") or "run"
    )
    mitigated = f", {tags['mitigation']} mitigation" if tags.get("mitigation") else ""
    by = f" by {tags['requested_by']}" if tags.get("requested_by") else ""
    until = f", data to {tags['window_end'][:16]}" if tags.get("window_end") else ""
    return f"{reason}{mitigated}{by}{until}"


def version_description(evidence: GateEvidence, run_tags: dict[str, str]) -> str:
    """A registered version's description in MLflow: the gate's verdict with its checks' intervals,
    and what the version learned from. The full evidence is the run's gate/evidence.json."""
    lines = [f"Gate: {evidence.verdict or 'unknown'} ({evidence.method or 'unknown method'}"]
    if evidence.confidence is not None:
        lines[0] += f", {evidence.confidence:.0%} confidence"
    if evidence.holdout_rows is not None:
        lines[0] += f", {evidence.holdout_rows} holdout rows"
    lines[0] += ")."
    for check in evidence.checks:
        interval = (
            f" [{check.low:.3f}, {check.high:.3f}]"
            if check.low is not None and check.high is not None
            else ""
        )
        value = f"{check.value:.3f}" if check.value is not None else "n/a"
        lines.append(
            f"- {check.name}: {value}{interval} -> {check.outcome or ('pass' if check.passed else 'fail')}"
        )
    start, end = run_tags.get("window_start", "?")[:16], run_tags.get("window_end", "?")[:16]
    dataset = run_tags.get("dataset_sha256", "?")[:12]
    lines.append(f"Data: applications from {start} to {end}, dataset {dataset}.")
    lines.append(f"Started by: {run_name(run_tags)}.")
    return "\n".join(lines)
