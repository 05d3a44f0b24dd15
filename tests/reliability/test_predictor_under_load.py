"""The predictor under load with malformed requests mixed in: no 5xx, bounded memory, every good answer.

Four clients send V1 JSON, a fifth V2 binary tensors, and Triton's gRPC client (another process)
sends gRPC: a tenth of each is malformed, and each must be refused as bad input (400, or
INVALID_ARGUMENT), never as a server error.
"""

import json
import os
import random
import subprocess
import threading
import time

import httpx
import psutil
import pyarrow.parquet as pq
import pytest
from support.v2_cases import TRITON_GRPC, bad_binary_requests, bad_grpc_requests, binary_body, feature_specs, json_specs

from mlworkloads.training.export import load

DURATION_SECONDS = float(os.environ.get("MLWORKLOADS_LOAD_SECONDS", "30"))


def _predictor_pid(url):
    port = int(url.rsplit(":", 1)[1])
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == psutil.CONN_LISTEN:
            return connection.pid
    raise AssertionError(f"no process listens on {port}")


@pytest.mark.e2e
def test_ten_percent_malformed_requests_for_30_seconds(
    predictor_url, predictor_grpc, sample_model, sample_features, capsys
):
    rows = pq.read_table(sample_features["test_raw"]).slice(0, 50)
    specs = feature_specs(sample_model, rows.slice(0, 32))
    good_binary, bad_binary = binary_body(specs), bad_binary_requests(specs)
    grpc_job = {
        "url": predictor_grpc,
        "model": "flights",
        "load": {
            "seconds": DURATION_SECONDS,
            "good": {"inputs": json_specs(specs)},
            "bad": [request for request, _ in bad_grpc_requests(specs)],
            "bad_share": 0.1,
        },
    }
    grpc_load = subprocess.Popen(TRITON_GRPC, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    grpc_load.stdin.write(json.dumps(grpc_job))
    grpc_load.stdin.close()
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

    def binary_client():
        rng = random.Random(9)
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop:
                malformed = rng.random() < 0.1
                body, headers, _ = rng.choice(bad_binary) if malformed else (*good_binary, None)
                response = http.post(f"{predictor_url}/v2/models/flights/infer", content=body, headers=headers)
                with lock:
                    counts["binary_bad" if malformed else "binary_good"] += 1
                    counts["5xx"] += response.status_code >= 500
                    if response.status_code != (400 if malformed else 200):
                        counts["binary_unexpected"].append(f"{response.status_code}: {response.text[:200]}")

    counts |= {"binary_good": 0, "binary_bad": 0, "binary_unexpected": []}
    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(4)]
    threads.append(threading.Thread(target=binary_client))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grpc = json.loads(grpc_load.stdout.read())
    grpc_load.wait(timeout=60)
    growth = process.memory_info().rss - rss_before
    with capsys.disabled():  # the figures go into CI's output
        print(
            f"\n{counts['good']} good and {counts['bad']} malformed V1 requests, {counts['binary_good']} good and "
            f"{counts['binary_bad']} malformed V2 binary requests, {grpc['good']} good and {grpc['bad']} malformed "
            f"gRPC requests in {DURATION_SECONDS:.0f} s; {counts['5xx']} answered 5xx, gRPC codes {grpc['codes']}; "
            f"RSS grew {growth / 2**20:.1f} MiB"
        )
    assert counts["5xx"] == 0 and counts["good_failed"] == 0 and counts["binary_unexpected"] == []
    assert grpc["good_failed"] == 0 and grpc["bad_not_invalid"] == []
    assert set(grpc["codes"]) <= {"OK", "INVALID_ARGUMENT"}
    assert counts["bad"] > 0.05 * (counts["good"] + counts["bad"])
    assert counts["binary_bad"] > 0 and grpc["bad"] > 0
    assert growth < 64 * 2**20
