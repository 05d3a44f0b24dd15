"""`python -m mlworkloads.serving --model_dir DIR --model_name NAME`: the KServe predictor server."""

from __future__ import annotations

import argparse
import logging
import sys

from kserve import ModelServer, model_server
from kserve import logging as kserve_logging

from mlworkloads.serving import v2_grpc, v2_rest
from mlworkloads.serving.inferenceservice import PER_REQUEST_LOGS
from mlworkloads.serving.limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from mlworkloads.serving.metrics import RequestCounter
from mlworkloads.serving.predictor import DEFAULT_MAX_BATCH, DEFAULT_MODEL_DIR, TabularModel, limit_compute_threads
from mlworkloads.training.errors import ModelDirError

# `python -m` runs this module as __main__: named for the package, so that it logs as the package does.
log = logging.getLogger("mlworkloads.serving")

parser = argparse.ArgumentParser(parents=[model_server.parser], description=__doc__)
parser.add_argument("--model_dir", default=DEFAULT_MODEL_DIR, help="Model directory (KServe mounts storageUri here).")
parser.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH, help="Largest batch accepted (rows).")
parser.add_argument(
    "--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="Largest request body accepted (413 above)."
)
parser.add_argument(
    "--per_request_logs",
    choices=PER_REQUEST_LOGS,
    default="all",
    help="'all': KServe's lines for every request (the access line, its timing middleware's two and the "
    "model's latency line); 'errors': only the access lines of 4xx and 5xx answers, and every error's own "
    "log. The lines cost about a quarter of a one-row request's CPU (bench/README.md).",
)
parser.add_argument(
    "--threads",
    "--torch_threads",
    dest="threads",
    type=int,
    default=1,
    help="Compute threads for torch and numpy's BLAS. One is fastest for request-sized batches: scale with replicas.",
)


def arguments(
    model_dir: str, name: str, http_port: int, grpc_port: int, max_batch_size: int, per_request_logs: str = "all"
) -> list[str]:
    """The command-line arguments of this server for one model (what `mlworkloads serve` passes)."""
    return [
        "--model_dir", model_dir, "--model_name", name, "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        "--max_batch_size", str(max_batch_size), "--per_request_logs", per_request_logs,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args, _ = parser.parse_known_args(argv)
    if args.max_batch_size < 1:
        parser.error(f"--max_batch_size={args.max_batch_size}: expected at least 1.")
    if args.workers > 1:
        # KServe's workers are spawned processes that unpickle the model and import a fresh app:
        # this predictor's V2 route, body limit and request counter would be missing there.
        parser.error(
            f"--workers={args.workers}: this predictor serves from one process; scale with replicas "
            "(the InferenceService's min_replicas/max_replicas) or more `mlworkloads serve` processes."
        )
    limit_compute_threads(args.threads)
    if args.configure_logging:
        _configure_logging(args.log_config_file)
    model = TabularModel(args.model_name, args.model_dir, args.max_batch_size)
    try:
        model.load()
    except (ModelDirError, FileNotFoundError, ValueError) as err:
        log.error("cannot serve %s: %s", args.model_dir, err)
        print(f"error: {err}", file=sys.stderr)
        return 2
    # KServe serves a module-level FastAPI app; the cap is added to it before it starts.
    model_server.app.add_middleware(BodySizeLimit, max_bytes=args.max_body_bytes)
    model_server.app.add_middleware(RequestCounter)  # outermost of ours: counts the 413s too
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        workers=args.workers,
        enable_latency_logging=args.enable_latency_logging and args.per_request_logs == "all",
    )
    if args.per_request_logs == "errors":
        log_errors_only()  # after ModelServer, which configures KServe's logging (its levels included)
    v2_rest.install(model_server.app, server.dataplane)
    v2_grpc.install()
    server.start([model])
    return 0


def log_errors_only() -> None:
    """Drops the lines KServe and uvicorn log for every request answered, keeping those of errors.

    Per request KServe logs an access line (uvicorn), two timing lines (its timing middleware,
    on `kserve.trace`), the model's latency line (also `kserve.trace`) and, over gRPC, the
    method called (`kserve`). Errors keep their access line and KServe's own error logs.
    """
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(_error_answers)
    logging.getLogger("kserve").addFilter(_not_grpc_method_lines)


def _error_answers(record: logging.LogRecord) -> bool:
    # uvicorn's access line: '%s - "%s %s HTTP/%s" %d' with the status code last.
    status = record.args[-1] if isinstance(record.args, tuple) and record.args else None
    return not isinstance(status, int) or status >= 400


def _not_grpc_method_lines(record: logging.LogRecord) -> bool:
    # KServe's LoggingInterceptor: "grpc method: ..." at INFO for every gRPC call.
    return not (record.funcName == "intercept_service" and record.levelno < logging.WARNING)


def _configure_logging(log_config_file: str | None) -> None:
    """KServe's logging (its format, level and stream, or --log_config_file), with the package's
    lines sent where KServe's go.

    KServe configures only its own and uvicorn's loggers, and not at all once any handler is
    set (`mlworkloads serve` sets the root's, at WARNING): the server then logged nothing at
    INFO, not even where it listens, and the predictor's own INFO lines (the model it loaded)
    never went anywhere. A log config that sets up `mlworkloads` itself is left as it is.
    """
    kserve_logging.configure_logging(log_config_file or kserve_logging.KSERVE_LOG_CONFIG)
    ours, kserve_logger = logging.getLogger("mlworkloads"), logging.getLogger("kserve")
    if ours.handlers or not kserve_logger.handlers:
        return
    ours.handlers = list(kserve_logger.handlers)
    ours.setLevel(kserve_logger.level)
    ours.propagate = False


if __name__ == "__main__":
    sys.exit(main())
