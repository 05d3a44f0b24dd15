"""Prediction metrics for `/metrics`, counted a whole batch at a time.

prometheus_client's `Histogram.observe` takes one value per call behind a lock: a 256-row
request cost 256 calls, a quarter of the predictor's time under load (py-spy, see
bench/README.md). `BatchHistogram` counts a numpy batch with one `searchsorted` + `bincount`
(a few values with `bisect`, cheaper than any numpy call at that size) and exposes the
standard `_bucket`/`_count`/`_sum` series, so dashboards and `histogram_quantile` read it like
any other Prometheus histogram.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from mlworkloads.data.preprocessor import SMALL_BATCH


class BatchHistogram(Collector):
    """A labelled Prometheus histogram whose `observe` takes an array of values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ):
        bounds = sorted(float(b) for b in buckets)
        if bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._bounds = np.array(bounds)
        self._bound_list = bounds
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        if registry is not None:
            registry.register(self)

    def observe(self, label_values: Sequence[str], values: np.ndarray) -> None:
        """Counts every value of `values` (1-D, finite) under the series `label_values`."""
        # Bucket i counts values <= bounds[i] (Prometheus' `le`); cumulated when scraped.
        key = tuple(map(str, label_values))
        if values.size <= SMALL_BATCH:
            # A few values: bisect in Python, straight into the series, costs less than numpy's
            # fixed cost per call.
            small = values.ravel().tolist()
            with self._lock:
                counts, sums = self._series_of(key)
                for value in small:
                    counts[bisect.bisect_left(self._bound_list, value)] += 1
                sums[0] += math.fsum(small)
            return
        values = np.asarray(values, dtype=np.float64).ravel()
        buckets = np.searchsorted(self._bounds, values, side="left")
        batch, total = np.bincount(buckets, minlength=len(self._bounds)).tolist(), float(values.sum())
        with self._lock:
            counts, sums = self._series_of(key)
            counts[:] = map(operator.add, counts, batch)
            sums[0] += total

    def _series_of(self, key: tuple[str, ...]) -> tuple[list[int], list[float]]:
        """The series' per-bucket counts and [sum]; the caller holds the lock."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = ([0] * len(self._bound_list), [0.0])
        return series

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(key, list(itertools.accumulate(c)), sums[0]) for key, (c, sums) in self._series.items()]
        for key, cumulative, total in snapshot:
            buckets = [(floatToGoString(b), float(c)) for b, c in zip(self._bounds, cumulative, strict=True)]
            family.add_metric(list(key), buckets, total)
        yield family

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]


REQUESTS = Counter(
    "mlworkloads_requests_total",
    "Inference requests answered, by model, protocol (v1, v2) and HTTP status code.",
    ["model_name", "protocol", "code"],
)
TRAINING_CLASS_SHARE = Gauge(
    "mlworkloads_training_class_share",
    "Share of each class among the model's predictions on its validation split: the baseline the "
    "live predicted-class mix is compared with.",
    ["model_name", "predicted_class"],
)


def inference_route(path: str) -> tuple[str, str] | None:
    """(model name, protocol) of an inference path (`/v1/models/<m>:predict`, `/v2/models/<m>/infer`)."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return path[len("/v1/models/") : -len(":predict")], "v1"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return path[len("/v2/models/") : -len("/infer")].split("/versions/")[0], "v2"
    return None


class RequestCounter:
    """ASGI middleware counting every inference request by its status code, 4xx and 5xx included
    (what an error-rate alert needs; KServe's own histograms time only the requests that succeed)."""

    def __init__(self, app):
        self.app = app
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope, receive, send):
        route = inference_route(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        status = 500  # what the client sees if the app raises before it answers

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            key = (*route, status)
            series = self._series.get(key)
            if series is None:  # looked up once per series: `labels()` takes a lock
                series = self._series[key] = REQUESTS.labels(route[0], route[1], str(status))
            series.inc()
