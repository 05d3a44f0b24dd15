"""While a model is updated (promoted, or rolled back), a client polling the endpoint sees no failure.

On the REAL test cluster: the deploy step runs in a pod (support/cluster/deployer.py), KServe's
controller writes the canary's Deployment and Service, retargets its Ingress on promotion and
removes the canary on rollback, and the real Deployment controller replaces the pods. The client
polls the service's URL host the way its users do, through the Ingress: our ingress simulation
(support/cluster/ingress.py, in place of Istio's or NGINX's gateway) follows the Ingress rules, and
the pod runner's Service proxy (in place of kube-proxy) sends each connection to a ready pod.
"""

import threading
import time

import httpx
import pyarrow.parquet as pq
import pytest
from support.cluster.deployer import expected_predictions

from mlworkloads.training.export import load

POLL_LIMIT = 20_000  # a bound on the loop, far above what one promotion and one rollback take


@pytest.mark.e2e
def test_a_polling_client_sees_no_failed_request_through_promotion_and_rollback(
    sample_model, other_model, sample_features, deployer
):
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 100)
    assert deployer.deploy(sample_model, rows).phase == "Succeeded"
    columns = load(sample_model).preprocessor.feature_columns
    body = {"instances": [{c: rows[c][0].as_py() for c in columns}]}
    results, stop = [], threading.Event()

    def poll():
        with deployer.client() as client:
            while not stop.is_set() and len(results) < POLL_LIMIT:
                try:
                    response = client.post("/v1/models/flights:predict", json=body)
                    results.append(200 if response.status_code == 200 else f"{response.status_code} {response.text}")
                except httpx.HTTPError as err:
                    results.append(repr(err))
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        promoted = deployer.deploy(other_model, rows)  # canary, then promoted
        rolled_back = deployer.deploy(sample_model, rows, expected=expected_predictions(other_model, rows))
    finally:
        stop.set()
        poller.join()
    assert promoted.phase == "Succeeded", promoted.log
    assert rolled_back.phase == "Failed" and "rolled back" in rolled_back.log, rolled_back.log
    failures = [r for r in results if r != 200]
    print(f"{len(results)} polls during promotion and rollback, {len(failures)} failed")
    assert len(results) > 50 and not failures, failures[:5]
