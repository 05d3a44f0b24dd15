"""Gradient-boosted trees: ours against scikit-learn's HistGradientBoostingClassifier on the same flights split.

In one run, on the demo's split of the real flights table (ingest, split and preprocessor as
the pipeline runs them): the baseline (default settings, 300 iterations) fit on the
preprocessed features; our trees with the pipeline's defaults, one process, timed from reading
the features to the written model; the same with 2 workers; and our predictor serving the
trees against a trivial KServe model (1-row V1 p50).

Run: .venv/bin/python bench/boosting.py [--smoke]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import Report, median, parser  # noqa: E402


def _matrix(uri: str, preprocessor):
    import pyarrow.parquet as pq

    from mlworkloads.training.boosting_model import feature_matrix

    features, labels = preprocessor.from_table(pq.read_table(uri))
    return feature_matrix(features.numeric, features.categorical), labels


def baseline(features: dict[str, str], test_uri: str) -> tuple[float, float]:
    """(fit seconds, test ROC AUC) of HistGradientBoostingClassifier(max_iter=300) on the same features."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from mlworkloads.training.trainer import load_preprocessor

    preprocessor = load_preprocessor(features["preprocessor"])
    x, y = _matrix(features["train"], preprocessor)
    x_test, y_test = _matrix(test_uri, preprocessor)
    started = time.perf_counter()
    model = HistGradientBoostingClassifier(max_iter=300, random_state=0).fit(x, y)
    seconds = time.perf_counter() - started
    return seconds, float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


def test_auc(model_dir: str, test_raw: str) -> float:
    """Test ROC AUC as the pipeline's evaluate step computes it (raw rows through the preprocessor)."""
    import pyarrow.parquet as pq

    from mlworkloads.training import evaluation
    from mlworkloads.training.export import load

    return evaluation.evaluate(load(model_dir), pq.read_table(test_raw), {}).metrics["roc_auc"]


def ours(features: dict[str, str], out: str, workers: int) -> float:
    """Seconds of our trees with the defaults: in this process for 1 worker, `spawn.py` for more."""
    from mlworkloads.training import launch
    from mlworkloads.training.boosting import run
    from mlworkloads.training.boosting_config import BoostingConfig

    started = time.perf_counter()
    if workers == 1:
        run(BoostingConfig(train_uri=features["train"], validation_uri=features["validation"],
                           preprocessor_uri=features["preprocessor"], output_uri=out))  # fmt: skip
    else:
        inputs = {name: launch.Inputs(features[key], features[key])
                  for name, key in (("train_features", "train"), ("validation_features", "validation"),
                                    ("preprocessor", "preprocessor"))}  # fmt: skip
        launch.train(**inputs, model_dir=out, training={}, model_family="xgboost", backend="local",
                     nproc_per_node=workers, echo=lambda _: None)  # fmt: skip
    return time.perf_counter() - started


def serving_p50s(model_dir: str, test_raw: str, n: int) -> tuple[float, float]:
    """(trivial model's, ours) median latency of a 1-row V1 request."""
    import pyarrow.parquet as pq

    from mlworkloads.serving.local_server import local_predictor
    from mlworkloads.training.export import load
    from serving import _baseline_server, _bodies, _load

    body, headers = _bodies(pq.read_table(test_raw).slice(0, 1), load(model_dir).preprocessor)["v1"]
    with _baseline_server("trivial_model.py") as (trivial, _), local_predictor(model_dir, "flights") as served:
        targets = {
            "trivial": {"url": f"{trivial}/v1/models/echo:predict", "body": body, "headers": headers, "n": n},
            "ours": {"url": f"{served}/v1/models/flights:predict", "body": body, "headers": headers, "n": n},
        }
        results = _load(targets, [], 1.0)
    return median(results["trivial"]["latencies"]), median(results["ours"]["latencies"])


def main() -> int:
    args = parser(__doc__).parse_args()
    from training import _features

    report = Report(args.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        features = _features(tmp, 20_000 if args.smoke else None)
        test_raw, test_features = os.path.join(tmp, "test.parquet"), os.path.join(tmp, "test_features.parquet")
        base_seconds, base_auc = baseline(features, test_features)
        one_seconds = ours(features, os.path.join(tmp, "one"), 1)
        one_auc = test_auc(os.path.join(tmp, "one"), test_raw)
        two_seconds = ours(features, os.path.join(tmp, "two"), 2)
        two_auc = test_auc(os.path.join(tmp, "two"), test_raw)
        trivial_p50, our_p50 = serving_p50s(os.path.join(tmp, "one"), test_raw, 100 if args.smoke else 2000)
    report.figure("boosting.baseline_fit_s", base_seconds, "HistGradientBoostingClassifier(max_iter=300)")
    report.figure("boosting.baseline_test_roc_auc", base_auc, "report only", fmt="{:.4f}")
    report.figure("boosting.test_roc_auc", one_auc, ">= 0.93", one_auc >= 0.93, fmt="{:.4f}")
    report.figure("boosting.test_roc_auc_minus_baseline", one_auc - base_auc, ">= 0", one_auc >= base_auc, "{:+.4f}")
    report.figure("boosting.train_s_1_worker", one_seconds, "read, train, export")
    report.figure("boosting.train_vs_baseline_fit", one_seconds / base_seconds, "<= 2x",
                  one_seconds <= 2 * base_seconds)  # fmt: skip
    report.figure("boosting.train_s_2_workers", two_seconds, "report only; 2 cores")
    report.figure("boosting.test_roc_auc_2_vs_1_workers", abs(two_auc - one_auc), "<= 0.002",
                  abs(two_auc - one_auc) <= 0.002, "{:.5f}")  # fmt: skip
    report.figure("boosting.predictor_p50_ms", our_p50 * 1e3)
    report.figure("boosting.predictor_p50_vs_trivial", our_p50 / trivial_p50, "<= 1.3x", our_p50 / trivial_p50 <= 1.3)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
