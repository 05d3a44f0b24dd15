"""The load client of bench/serving.py, run as another process so that its CPU is not the servers'.

Run: python bench/load_client.py JOB.json, where the job is

    {"targets": {NAME: {"url": URL, "body": PATH, "headers": {...}, "n": N}   # HTTP POST
                     | {"grpc": "HOST:PORT", "body": PATH, "n": N}},     # a serialized ModelInferRequest
     "concurrent": [NAME, ...], "seconds": S}

HTTP targets are sent with `http.client`, one kept-alive connection per client: the same request
cost 0.35-1.1 ms more from httpx (bench/README.md), client time that would hide the servers'.
Each target gets its N sequential requests timed one by one, in 5 rounds of blocks of N/5 when
N >= 500 (one block each otherwise), each block after 20 warm-up requests: a burst of load on
the machine then hits every target alike (one block per target once put a ratio at 1.2x and
1.85x in two runs of the same code), while blocks of a few hundred requests keep the cache
effects of switching servers out of the figures (alternating every few requests shifted the
trivial model's by up to 8%). The `concurrent` targets then get S seconds of 4 clients each,
alternating in 5 rounds so that a change in the machine's load hits each alike. Bodies are built
once, by the caller: what is timed is the request, not building it. Prints one JSON line:
{NAME: {"latencies": [...], "rps_c4": ...}}.
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

import grpc

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def _sender(target: dict):
    """A function that sends the target's request once, raising if it is not answered with success."""
    with open(target["body"], "rb") as f:
        body = f.read()
    if "grpc" in target:
        channel = grpc.insecure_channel(target["grpc"], options=[("grpc.max_receive_message_length", 64 * 2**20)])
        infer = channel.unary_unary(MODEL_INFER)  # bytes in, bytes out: no (de)serialising timed

        return lambda: infer(body, timeout=30)
    url = urlsplit(target["url"])
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Length": str(len(body)), **target.get("headers", {})}

    def post():
        connection.request("POST", url.path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"{target['url']} answered {response.status}: {answer[:500]!r}")

    return post


def main() -> int:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    results = {name: {"latencies": [], "requests": 0, "seconds": 0.0} for name in job["targets"]}
    senders = {name: _sender(target) for name, target in job["targets"].items()}
    timed_rounds = 5 if min(target["n"] for target in job["targets"].values()) >= 500 else 1
    for round_ in range(timed_rounds):
        for name, target in job["targets"].items():
            send, (block, rest) = senders[name], divmod(target["n"], timed_rounds)
            if round_ == timed_rounds - 1:
                block += rest
            for _ in range(20):
                send()
            for _ in range(block):
                started = time.perf_counter()
                send()
                results[name]["latencies"].append(time.perf_counter() - started)

    def worker(target, stop, done):
        send = _sender(target)
        while time.perf_counter() < stop:
            send()
            done.append(1)

    seconds = job["seconds"]
    rounds = 5 if seconds >= 5 else 1
    for _ in range(rounds):
        for name in job["concurrent"]:
            done, started = [], time.perf_counter()
            threads = [
                threading.Thread(target=worker, args=(job["targets"][name], started + seconds / rounds, done))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            results[name]["requests"] += len(done)
            results[name]["seconds"] += time.perf_counter() - started
    for name in job["concurrent"]:
        results[name]["rps_c4"] = results[name]["requests"] / results[name]["seconds"]
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
