"""The batch histogram exposes exactly what prometheus_client's own Histogram would."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from mlworkloads.serving.metrics import BatchHistogram

BUCKETS = (0.1, 0.5, 0.9, 1.0)


def test_a_batch_histogram_scrapes_the_same_as_one_observe_per_value():
    values = np.random.default_rng(0).uniform(-0.2, 1.5, size=1000)
    values[:5] = [0.1, 0.5, 0.9, 1.0, 1.5]  # exactly on the bounds: `le` is inclusive
    ours_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("score", "Scores.", ["model_name"], BUCKETS, registry=ours_registry)
    reference = Histogram("score", "Scores.", ["model_name"], buckets=BUCKETS, registry=reference_registry)
    # Batches of up to SMALL_BATCH values take a Python path, larger ones numpy's: both here.
    for batch in np.split(values, [1, 3, 16, 17, 300, 600]):
        ours.observe(("flights",), batch)
        for value in batch.tolist():
            reference.labels("flights").observe(value)
    ours.observe(("other",), np.array([0.3]))
    reference.labels("other").observe(0.3)

    def samples(registry):
        lines = generate_latest(registry).decode().splitlines()
        pairs = (line.rsplit(" ", 1) for line in lines if not line.startswith("#") and "_created" not in line)
        return {series: float(value) for series, value in pairs}

    ours_samples = samples(ours_registry)
    assert ours_samples == pytest.approx(samples(reference_registry), rel=1e-12)  # sums differ in the last bit
    assert ours_samples['score_bucket{le="0.5",model_name="flights"}'] == (values <= 0.5).sum()
