"""The shipped dashboard and alert rules, evaluated by a REAL Prometheus (built from its upstream
module) scraping the predictor under a load whose every request and class is known."""

import json
import pathlib

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import free_port
from support.prometheus import prometheus
from support.v2_cases import binary_body, feature_specs
from support.waiting import wait_until

from mlworkloads.serving import predictor
from mlworkloads.serving.local_server import local_predictor
from mlworkloads.training.export import load

SERVING = pathlib.Path(predictor.__file__).parent
MODEL = "flights-watched"


@pytest.fixture(scope="module")
def prometheus_binary():
    """Prometheus from its pinned module (built before the first test: conftest.py)."""
    from support.cluster.build import build

    return build(only=("prometheus",)).binary("prometheus")


@pytest.mark.e2e
def test_every_dashboard_and_rule_expression_reads_the_predictor_under_load(
    prometheus_binary, sample_model, sample_features, tmp_path
):
    model = load(sample_model)
    rows = pq.read_table(sample_features["test_raw"])
    predicted = model.predict_columns(rows).argmax(axis=1)
    columns = model.preprocessor.feature_columns
    # A live mix far from the validation split's: mostly rows the model puts in its rarer class.
    rarer = int(np.argmin(np.bincount(predicted, minlength=2)))
    rare = np.flatnonzero(predicted == rarer)
    chosen = [*rare[:30].tolist(), *np.flatnonzero(predicted != rarer)[:5].tolist()]
    bad = [b'{"instances": [{"month": "x"}]}', b'{"instances": []}', b"not json"]  # each answered 400
    binary = binary_body(feature_specs(sample_model, rows.take(rare[:8])))

    with local_predictor(sample_model, MODEL) as base:
        port = int(base.rsplit(":", 1)[1])
        with prometheus(prometheus_binary, tmp_path / "prometheus", free_port(), [f"127.0.0.1:{port}"],
                        SERVING / "prometheus-rules.yaml") as prom:  # fmt: skip
            total = f'sum(mlworkloads_requests_total{{model_name="{MODEL}"}})'
            with httpx.Client(base_url=base, timeout=30) as http:

                def send(good: list[int], bad_bodies: list[bytes], v2: int) -> None:
                    for i in good:
                        instance = {c: rows[c][i].as_py() for c in columns}
                        http.post(f"/v1/models/{MODEL}:predict", json={"instances": [instance]}).raise_for_status()
                    headers = {"Content-Type": "application/json"}
                    for body in bad_bodies:
                        answer = http.post(f"/v1/models/{MODEL}:predict", content=body, headers=headers)
                        assert answer.status_code == 400, answer.text
                    for _ in range(v2):
                        http.post(f"/v2/models/{MODEL}/infer", content=binary[0], headers=binary[1]).raise_for_status()

                # Every series scraped once before the load, so that rate() sees the load rise.
                send(chosen[:1], bad[:1], 1)
                wait_until(lambda: prom.value(total) == 3, what="Prometheus to scrape the first requests", timeout=60)
                send(chosen[1:], bad[1:] + bad, 4)
            sent = len(chosen) + 2 * len(bad) + 5
            # Until a scrape after the load has landed, and the rules have read it.
            client_errors = f'mlworkloads:request_client_error_ratio:rate5m{{model_name="{MODEL}"}}'
            wait_until(
                lambda: prom.value(total) == sent and (prom.value(client_errors) or 0) > 0,
                what="Prometheus to scrape the whole load",
                timeout=60,
            )
            by_code = {
                (r["metric"]["protocol"], r["metric"]["code"]): float(r["value"][1])
                for r in prom.query(f'mlworkloads_requests_total{{model_name="{MODEL}"}}')
            }
            assert by_code == {("v1", "200"): len(chosen), ("v1", "400"): 2 * len(bad), ("v2", "200"): 5}
            classes = [str(c) for c in model.preprocessor.classes]
            served = np.concatenate([predicted[chosen], np.tile(predicted[rare[:8]], 5)])
            expected = {classes[k]: float(n) for k, n in enumerate(np.bincount(served, minlength=len(classes))) if n}
            by_class = {
                r["metric"]["predicted_class"]: float(r["value"][1])
                for r in prom.query(f'mlworkloads_predictions_total{{model_name="{MODEL}"}}')
            }
            assert by_class == expected

            # Every panel's expression returns data for this model.
            dashboard = json.loads((SERVING / "grafana-dashboard.json").read_text())
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    expr = target["expr"].replace("$model", MODEL)
                    assert prom.query(expr), f"panel {panel['title']!r}: {expr} returned nothing"

            # Every rule evaluates cleanly; every recorded series has data and the right values.
            rules = prom.rules()
            shipped = yaml.safe_load((SERVING / "prometheus-rules.yaml").read_text())["groups"][0]["rules"]
            assert len(rules) == len(shipped)
            assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), rules
            for rule in shipped:
                if "record" in rule:
                    assert prom.query(f'{rule["record"]}{{model_name="{MODEL}"}}'), rule["record"]
            # rate() extrapolates each series over its own samples: the ratio is the load's, roughly.
            assert prom.value(client_errors) == pytest.approx((2 * len(bad) - 1) / (sent - 3), rel=0.25)
            assert prom.value(f'mlworkloads:request_error_ratio:rate5m{{model_name="{MODEL}"}}') == 0
            # The alerts: the load made the client-error and class-shift conditions true, not the others.
            alerts = {rule["alert"]: rule["expr"] for rule in shipped if "alert" in rule}
            firing = {name for name, expr in alerts.items() if prom.query(expr)}
            assert firing == {"MlworkloadsPredictorClientErrors", "MlworkloadsPredictedClassShift"}
