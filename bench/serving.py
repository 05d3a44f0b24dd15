"""Serving: our predictor against a trivial KServe model, both on 127.0.0.1, driven from another process.

Run: .venv/bin/python bench/serving.py [--smoke]
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from _common import Report, best_of, parser  # noqa: E402


def _load(targets: dict[str, dict], concurrent: list[str], seconds: float) -> dict[str, dict]:
    """Runs bench/load_client.py on `targets` (each with its `body` as bytes); returns its results."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, target in targets.items():
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(target.pop("body"))
            target["body"] = path
        job = os.path.join(tmp, "job.json")
        with open(job, "w") as f:
            json.dump({"targets": targets, "concurrent": concurrent, "seconds": seconds}, f)
        client = os.path.join(os.path.dirname(__file__), "load_client.py")
        out = subprocess.run([sys.executable, client, job], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"the load client exited with {out.returncode}:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def _bodies(rows, preprocessor) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The same rows as V1 JSON, V2 JSON, V2 binary tensors and a gRPC ModelInferRequest.

    Every V2 form sends one input per feature as the model advertises them (numbers FP64, text
    BYTES); a missing number is null in JSON and NaN in a tensor, a missing text "".
    """
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    from mlworkloads.data import tensors
    from mlworkloads.serving import v2_rest

    n, columns = rows.num_rows, preprocessor.feature_columns
    instances = [{c: rows[c][i].as_py() for c in columns} for i in range(n)]
    numbers = {c["name"]: pc.cast(rows[c["name"]], pa.float64()).to_numpy(zero_copy_only=False)
               for c in preprocessor.numeric}  # fmt: skip
    texts = {c["name"]: pc.fill_null(pc.cast(rows[c["name"]], pa.string()), "").combine_chunks()
             for c in preprocessor.categorical}  # fmt: skip
    v2_json = {
        "inputs": [
            {"name": k, "datatype": "FP64", "shape": [n], "data": [None if v != v else v for v in a.tolist()]}
            for k, a in numbers.items()
        ]
        + [{"name": k, "datatype": "BYTES", "shape": [n], "data": a.to_pylist()} for k, a in texts.items()]
    }
    raw = [(k, "FP64", [n], tensors.encode_numeric(a, "FP64")) for k, a in numbers.items()]
    raw += [(k, "BYTES", [n], tensors.encode_bytes(a)) for k, a in texts.items()]
    grpc_request = pb.ModelInferRequest(
        model_name="flights",
        inputs=[pb.ModelInferRequest.InferInputTensor(name=k, datatype=d, shape=s) for k, d, s, _ in raw],
        raw_input_contents=[r for *_, r in raw],
    )
    json_headers = {"Content-Type": "application/json"}
    return {
        "v1": (orjson.dumps({"instances": instances}), json_headers),
        "v2_json": (orjson.dumps(v2_json), json_headers),
        "v2_binary": v2_rest.encode_request(raw, ["probabilities", "predicted_class"]),
        "grpc": (grpc_request.SerializeToString(), {}),
    }


@contextlib.contextmanager
def _baseline_server(script: str):
    """Runs bench/`script` (a model named "echo"); yields its HTTP base URL and gRPC address."""
    from mlworkloads.serving.local_server import free_port, stop_process_tree, wait_ready

    port, grpc_port = free_port(), free_port()
    command = [sys.executable, os.path.join(os.path.dirname(__file__), script),
               "--http_port", str(port), "--grpc_port", str(grpc_port)]  # fmt: skip
    if script == "trivial_model.py":
        command += ["--model_name", "echo"]
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}", "echo", process, 60, log.name)
            yield f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"
        finally:
            stop_process_tree(process)


def _request_path(model_dir: str, body: bytes, headers: dict[str, str]):
    """Our whole V2 request path in process, without HTTP: the binary body decoded, predicted
    (as the server does, on an event loop) and the response encoded."""
    import asyncio

    from mlworkloads.serving import v2_rest
    from mlworkloads.serving.predictor import TabularModel

    predictor = TabularModel("flights", model_dir)
    predictor.load()
    loop = asyncio.new_event_loop()
    header_length = headers[v2_rest.HEADER_LENGTH]

    def once() -> None:
        request = v2_rest.decode_request(body, header_length, "flights")
        v2_rest.encode_response(loop.run_until_complete(predictor.predict(request)))

    return once


def main() -> int:
    args = parser(__doc__).parse_args()
    import pyarrow.parquet as pq

    from mlworkloads.data import steps
    from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
    from mlworkloads.data.ingest import IngestConfig
    from mlworkloads.data.preprocessor import PreprocessorOptions
    from mlworkloads.serving.local_server import free_port, local_predictor
    from mlworkloads.serving.predictor import limit_compute_threads
    from mlworkloads.training.config import TrainConfig
    from mlworkloads.training.export import load
    from mlworkloads.training.trainer import run

    report = Report(args.smoke)
    n, seconds = (100, 1.0) if args.smoke else (2000, 10.0)
    grpc_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.parquet")
        steps.ingest_step(IngestConfig(source_uri=FLIGHTS_URI, max_rows=40_000, **FLIGHTS_TASK), raw,
                          os.path.join(tmp, "r.md"))  # fmt: skip
        splits = {k: os.path.join(tmp, f"{k}.parquet") for k in ("train", "validation", "test")}
        steps.split_step(raw, splits, "late", 0.1, 0.1, 0, True)
        features = {k: os.path.join(tmp, f"{k}_f.parquet") for k in splits}
        steps.preprocess_step(splits, PreprocessorOptions(label_column="late"), os.path.join(tmp, "p.json"), features)
        model_dir = os.path.join(tmp, "model")
        run(TrainConfig(train_uri=features["train"], validation_uri=features["validation"],
                        preprocessor_uri=os.path.join(tmp, "p.json"), output_uri=model_dir, epochs=1))  # fmt: skip
        model = load(model_dir)
        test = pq.read_table(splits["test"])
        one, batch = _bodies(test.slice(0, 1), model.preprocessor), _bodies(test.slice(0, 256), model.preprocessor)
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

        echo_grpc = pb.ModelInferRequest.FromString(batch["grpc"][0])
        echo_grpc.model_name = "echo"
        with (
            _baseline_server("trivial_model.py") as (trivial, trivial_grpc),
            _baseline_server("bare_echo.py") as (bare, bare_grpc),
            local_predictor(model_dir, "flights", grpc_port=grpc_port) as ours,
            local_predictor(model_dir, "flights", per_request_logs="errors") as quiet,
        ):
            v1 = {"trivial": f"{trivial}/v1/models/echo:predict", "ours": f"{ours}/v1/models/flights:predict"}
            v2 = f"{ours}/v2/models/flights/infer"
            targets = {
                "trivial_1": {"url": v1["trivial"], "body": one["v1"][0], "headers": one["v1"][1], "n": n},
                "ours_1": {"url": v1["ours"], "body": one["v1"][0], "headers": one["v1"][1], "n": n},
                # The same predictor logging errors only (--per_request_logs errors).
                "quiet_1": {"url": f"{quiet}/v1/models/flights:predict", "body": one["v1"][0], "headers": one["v1"][1]},
                "trivial_v1_256": {"url": v1["trivial"], "body": batch["v1"][0], "headers": batch["v1"][1]},
                "v1_256": {"url": v1["ours"], "body": batch["v1"][0], "headers": batch["v1"][1]},
                "v2_json_256": {"url": v2, "body": batch["v2_json"][0], "headers": batch["v2_json"][1]},
                "v2_binary_256": {"url": v2, "body": batch["v2_binary"][0], "headers": batch["v2_binary"][1]},
                "trivial_v2_binary_256": {
                    "url": f"{trivial}/v2/models/echo/infer",
                    "body": batch["v2_binary"][0],
                    "headers": batch["v2_binary"][1],
                },
                "grpc_256": {"grpc": f"127.0.0.1:{grpc_port}", "body": batch["grpc"][0]},
                "trivial_grpc_256": {"grpc": trivial_grpc, "body": echo_grpc.SerializeToString()},
                "bare_v2_binary_256": {
                    "url": f"{bare}/v2/models/echo/infer",
                    "body": batch["v2_binary"][0],
                    "headers": batch["v2_binary"][1],
                },
                "bare_grpc_256": {"grpc": bare_grpc, "body": echo_grpc.SerializeToString()},
            }
            for target in targets.values():
                target.setdefault("n", n // 4)
            results = _load(targets, ["trivial_1", "ours_1", "quiet_1"], seconds)
        # In-process with the server's settings: one compute thread (serving/__main__.py --threads).
        limit_compute_threads(1)
        in_process = best_of(lambda: model.predict_columns(test.slice(0, 256)), repeat=200)
        request_path = best_of(_request_path(model_dir, *batch["v2_binary"]), repeat=200)

    from _common import median, percentile

    base, mine = results["trivial_1"], results["ours_1"]
    base_p50, our_p50 = median(base["latencies"]), median(mine["latencies"])
    our_p99 = percentile(mine["latencies"], 99)
    report.figure("serving.trivial_p50_ms", base_p50 * 1e3)
    report.figure("serving.predictor_p50_ms", our_p50 * 1e3)
    report.figure("serving.predictor_p99_ms", our_p99 * 1e3)
    report.figure("serving.p50_vs_trivial", our_p50 / base_p50, "<= 1.3x", our_p50 / base_p50 <= 1.3)
    report.figure("serving.p99_vs_own_p50", our_p99 / our_p50, "<= 3x", our_p99 / our_p50 <= 3)
    report.figure("serving.rps_c4_vs_trivial", mine["rps_c4"] / base["rps_c4"], ">= 0.8x",
                  mine["rps_c4"] / base["rps_c4"] >= 0.8)  # fmt: skip
    report.figure("serving.rps_c4_per_request_logs_errors_vs_all", results["quiet_1"]["rps_c4"] / mine["rps_c4"],
                  "report only")  # fmt: skip
    in_process_rows_per_s = 256 / in_process
    report.figure("serving.in_process_256_rows_us", in_process * 1e6, "report only", fmt="{:.0f}")
    for name, target in [("v1", None), ("v2_json", None), ("v2_binary", ">= 0.5x"), ("grpc", ">= 0.5x")]:
        rows_per_s = 256 / median(results[f"{name}_256"]["latencies"])
        ratio = rows_per_s / in_process_rows_per_s
        report.figure(f"serving.rows_per_s_256_{name}", rows_per_s, "report only", fmt="{:.0f}")
        report.figure(f"serving.rows_per_s_256_{name}_vs_in_process", ratio, target or "report only",
                      None if target is None else ratio >= 0.5)  # fmt: skip
    # The ceilings. Ours without HTTP: the V2 binary request decoded, predicted and encoded in
    # process. KServe's without our model: it receives, decodes and echoes the same 256 rows
    # as V1 JSON, V2 binary tensors (through the same route as ours, serving/v2_rest.py) and gRPC.
    # The transports' without KServe (bench/bare_echo.py): uvicorn + Starlette and grpcio's aio
    # server answering the same requests with 4 KiB of their bodies.
    report.figure("serving.request_path_in_process_256_us", request_path * 1e6, "report only", fmt="{:.0f}")
    report.figure("serving.request_path_in_process_256_vs_in_process", in_process / request_path, "report only")
    for server, names in (("trivial", ("v1", "v2_binary", "grpc")), ("bare", ("v2_binary", "grpc"))):
        for name in names:
            rows_per_s = 256 / median(results[f"{server}_{name}_256"]["latencies"])
            report.figure(f"serving.rows_per_s_256_{name}_{server}_echo", rows_per_s, "report only", fmt="{:.0f}")
            report.figure(f"serving.rows_per_s_256_{name}_{server}_echo_vs_in_process",
                          rows_per_s / in_process_rows_per_s, "report only")  # fmt: skip
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
