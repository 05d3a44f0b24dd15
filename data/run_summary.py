"""The run summary the exit handler writes, and the optional webhook notification."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)


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
