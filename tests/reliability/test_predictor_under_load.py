"""The predictor under load with malformed requests mixed in: no 5xx, bounded memory, every good answer."""

import json
import os
import random
import threading
import time

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from mlworkloads.training.export import load

DURATION_SECONDS = float(os.environ.get("MLWORKLOADS_LOAD_SECONDS", "30"))


def _predictor_pid(url):
    port = int(url.rsplit(":", 1)[1])
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return connection.pid
    raise AssertionError(f"no process listens on {port}")


@pytest.mark.e2e
def test_ten_percent_malformed_requests_for_30_seconds(predictor_url, sample_model, sample_features, capsys):
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 50)
    columns = load(sample_model).preprocessor.feature_columns
    good = [{"instances": [{c: rows[c][i].as_py() for c in columns}]} for i in range(50)]
    bad = [
        b'{"instances": [{"month"',
        b'{"instances": "x"}',
        b'{"instances": []}',
        b"\xff\xfe garbage",
        json.dumps({"instances": [{**good[0]["instances"][0], "distance": "far"}]}).encode(),
        json.dumps({"instances": [{"month": 1}]}).encode(),
        b'{"instances": [[1, 2, 3]]}',
    ]
    process = psutil.Process(_predictor_pid(predictor_url))
    rss_before = process.memory_info().rss
    counts = {"good": 0, "bad": 0, "5xx": 0, "good_failed": 0}
    lock = threading.Lock()
    stop = time.monotonic() + DURATION_SECONDS

    def client(seed):
        rng = random.Random(seed)
        with httpx.Client(timeout=30, headers={"Content-Type": "application/json"}) as http:
            while time.monotonic() < stop:
                malformed = rng.random() < 0.1
                body = rng.choice(bad) if malformed else json.dumps(rng.choice(good)).encode()
                response = http.post(f"{predictor_url}/v1/models/flights:predict", content=body)
                with lock:
                    counts["bad" if malformed else "good"] += 1
                    counts["5xx"] += response.status_code >= 500
                    if not malformed and response.status_code != 200:
                        counts["good_failed"] += 1
                    if malformed:
                        assert response.status_code == 400, (body[:60], response.status_code, response.text)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    growth = process.memory_info().rss - rss_before
    with capsys.disabled():  # the figures go into CI's output
        print(
            f"\n{counts['good']} good and {counts['bad']} malformed requests in {DURATION_SECONDS:.0f} s, "
            f"{counts['5xx']} answered 5xx; RSS grew {growth / 2**20:.1f} MiB"
        )
    assert counts["5xx"] == 0 and counts["good_failed"] == 0
    assert counts["bad"] > 0.05 * (counts["good"] + counts["bad"])
    assert growth < 64 * 2**20
