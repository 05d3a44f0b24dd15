"""What the `summarize_run` exit handler does: clean up a failed run, summarise it, notify.

It sits in the serving layer because it cleans up both what training launched (the run's
PyTorchJobs) and what the deployer left (an unpromoted canary). Nothing here fails the run.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlworkloads.data.steps import write_outputs
from mlworkloads.errors import RunIdentityError
from mlworkloads.kube import cluster_reachable, resolve_run_id
from mlworkloads.training.cleanup import clean_up_training

log = logging.getLogger(__name__)


def summarize_step(
    *,
    state: str,
    run_id: str,
    pipeline_task: str,
    error: str,
    service_name: str,
    namespace: str,
    webhook_url: str,
    summary_path: str,
) -> str:
    """Cleans up after a run that did not succeed, writes the Markdown summary, calls the webhook.

    Returns:
        The notification's outcome.
    """
    cleaned: list[str] = []
    if cluster_reachable():
        try:
            run_id = resolve_run_id(run_id)
        except RunIdentityError as err:
            # Cleaning up by a placeholder label would touch every run's objects: do nothing.
            cleaned.append(f"nothing cleaned up: {err}")
            known_run = False
        else:
            known_run = True
        if state != "SUCCEEDED" and known_run:
            cleaned += clean_up_training(run_id, namespace) + clear_left_over_canary(service_name, namespace)
    elif state != "SUCCEEDED":
        cleaned.append("local run: its training processes and servers stopped with their steps")
    text = summary_markdown(state, run_id, pipeline_task, error, cleaned)
    outcome = notify(
        webhook_url, {"text": f"mlworkloads run {run_id}: {state}", "state": state, "run_id": run_id, "error": error}
    )
    write_outputs(texts={summary_path: text + f"\nNotification: {outcome}\n"})
    return outcome


def clear_left_over_canary(service_name: str, namespace: str) -> list[str]:
    """Takes traffic off a canary of `service_name` a failed run left unpromoted. Never raises."""
    if not service_name:
        return []
    try:
        from mlworkloads.serving.deploy import clear_canary

        outcome = clear_canary(service_name, namespace)
        return [outcome] if outcome else []
    except Exception as err:  # noqa: BLE001 - clean-up must not fail the exit handler
        return [f"could not check InferenceService {service_name} for a canary: {err}"]


def summary_markdown(state: str, run_id: str, pipeline_task: str, error: str, cleaned: list[str]) -> str:
    """A short Markdown page: the run's final state, its error if any, and what was cleaned up."""
    icon = "✅" if state == "SUCCEEDED" else "❌"
    lines = [
        f"# Run summary {icon} {state}",
        "",
        f"- run: `{run_id}`",
        f"- finished: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
    ]
    if pipeline_task:
        lines.append(f"- pipeline task: `{pipeline_task}`")
    if error:
        lines += ["", "## Error", "", "```", error.strip()[:4000], "```"]
    lines += ["", "## Clean-up", ""]
    lines += [f"- {item}" for item in cleaned] or ["- nothing was left behind"]
    return "\n".join(lines) + "\n"


@retry(
    retry=retry_if_exception_type(httpx.TransportError),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=0.5, max=8),
    reraise=True,
)
def _post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, json=payload, timeout=10.0)


def notify(url: str, payload: dict[str, Any]) -> str:
    """POSTs `payload` as JSON (Slack- and Teams-style webhooks take a `text` field); returns the outcome.

    A notification never fails the run: problems are reported in the returned text and logged.
    """
    if not url:
        return "no webhook configured"
    try:
        response = _post(url, payload)
    except httpx.HTTPError as err:
        log.warning("webhook %s failed: %s", url, err)
        return f"webhook failed: {type(err).__name__}: {err}"
    if response.status_code >= 400:
        log.warning("webhook %s answered %d", url, response.status_code)
        return f"webhook answered {response.status_code}"
    return f"webhook answered {response.status_code}"
