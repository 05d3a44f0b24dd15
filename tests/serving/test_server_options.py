"""The predictor server's own options: `--per_request_logs errors` drops the lines KServe logs
for every answered request and keeps an error's (`all`, the default, logs them as KServe does);
what the server cannot honour is refused before it loads anything."""

import subprocess
import sys

import httpx
import pytest
from support.v2_cases import bad_grpc_requests, binary_body, feature_specs, json_specs, triton_grpc

from mlworkloads.serving.__main__ import arguments
from mlworkloads.serving.local_server import free_port, stop_process_tree, wait_ready


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["all", "errors"])
def test_per_request_lines_are_kept_for_errors_only_when_asked(sample_model, rows, tmp_path, mode):
    port, grpc_port, log = free_port(), free_port(), tmp_path / "server.log"
    argv = [sys.executable, "-m", "mlworkloads.serving", *arguments(sample_model, "flights", port, grpc_port, 64, mode)]
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, "flights", process, 120, str(log))
        specs = feature_specs(sample_model, rows)
        instance = {name: rows[name][0].as_py() for name in (s["name"] for s in specs)}
        assert httpx.post(f"{base}/v1/models/flights:predict", json={"instances": [instance]}).status_code == 200
        assert httpx.post(f"{base}/v2/models/flights/infer", content=binary_body(specs)[0],
                          headers=binary_body(specs)[1]).status_code == 200  # fmt: skip
        bad = httpx.post(f"{base}/v1/models/flights:predict", json={"instances": [{**instance, "distance": "far"}]})
        assert bad.status_code == 400
        (bad_grpc, _), good_grpc = bad_grpc_requests(specs)[0], {"inputs": json_specs(specs)}
        answers = triton_grpc({"url": f"127.0.0.1:{grpc_port}", "model": "flights", "requests": [good_grpc, bad_grpc]})
        assert [a["ok"] for a in answers] == [True, False]
    finally:
        stop_process_tree(process)
    text = log.read_text()
    successes = [line for line in text.splitlines() if "uvicorn.access" in line and '" 200' in line]
    errors = [line for line in text.splitlines() if "uvicorn.access" in line and '" 400' in line]
    assert len(errors) == 1, text[-3000:]  # the error's access line, in either mode
    assert "Error processing inference request" in text  # KServe's own log of the bad gRPC call
    if mode == "all":
        # An access line for the 200s (the readiness polls' GETs included), the timing
        # middleware's and the model's latency lines on kserve.trace, the gRPC method called.
        assert sum("POST" in line for line in successes) == 2
        assert "time:wall" in text and "predict_ms" in text and "grpc method: " in text
    else:
        assert successes == [] and "kserve.trace" not in text and "grpc method: " not in text, text[-3000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2"], "--workers=2: this predictor serves from one process; scale with replicas"),
        (["--per_request_logs", "none"], "argument --per_request_logs: invalid choice: 'none'"),
    ],
)
def test_server_options_it_cannot_honour_are_refused_before_loading_anything(tmp_path, capsys, extra, message):
    from mlworkloads.serving.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main([*arguments(str(tmp_path / "no-model"), "flights", free_port(), free_port(), 64), *extra])
    assert exited.value.code == 2 and message in capsys.readouterr().err
