"""The training report: loss and validation-metric curves as an HTML page the KFP UI shows."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a pipeline pod
import matplotlib.pyplot as plt  # noqa: E402


def curves_html(history: list[dict[str, Any]], title: str = "Training curves") -> str:
    """An HTML page with the curves (embedded PNG) and the history as a table.

    The network's history has an entry per epoch (losses and the validation metric); the
    boosted trees' one per round (the validation metric).
    """
    if not history:
        return f"<html><body><h1>{html.escape(title)}</h1><p>No epochs were run.</p></body></html>\n"
    step = "epoch" if "epoch" in history[0] else "round"
    steps = [h[step] + 1 for h in history]
    metric = next(k for k in history[0] if k.startswith("validation_") and k != "validation_loss")
    marker = "o" if len(history) <= 50 else None
    if "train_loss" in history[0]:
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
        left.plot(steps, [h["train_loss"] for h in history], marker=marker, label="train loss")
        left.plot(steps, [h["validation_loss"] for h in history], marker=marker, label="validation loss")
        left.set_xlabel(step)
        left.legend()
    else:
        figure, right = plt.subplots(1, 1, figsize=(5, 3.6), dpi=100)
    right.plot(steps, [h[metric] for h in history], marker=marker, color="tab:green")
    right.set_xlabel(step)
    right.set_title(metric.replace("_", " "))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    image = base64.b64encode(buffer.getvalue()).decode()
    columns = list(history[0])
    rows = "".join("<tr>" + "".join(f"<td>{_cell(h.get(c))}</td>" for c in columns) + "</tr>" for h in history)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    return (
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><img alt='curves' src='data:image/png;base64,{image}'/>"
        f"<table border='1' cellpadding='4'><tr>{header}</tr>{rows}</table></body></html>\n"
    )


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))
