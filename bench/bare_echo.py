"""The transports alone, without KServe: the floor under every serving figure.

uvicorn + Starlette (KServe's HTTP stack, with httptools) and grpcio's aio server (KServe's gRPC
stack) on one asyncio event loop, as KServe's one-worker server runs them, answering every
inference request with the first 4 KiB of its body (about the size of the predictor's answer
for 256 rows) and nothing else: no routing table, middleware, model, validation or logging. bench/serving.py times the
same 256-row requests against it, so that a target above what the transport alone reaches in
that run shows as such.

Run: python bench/bare_echo.py --http_port PORT --grpc_port PORT
"""

import argparse
import asyncio

import grpc
import uvicorn
from grpc import aio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ANSWER_BYTES = 4096


async def infer(request: Request) -> Response:
    return Response((await request.body())[:ANSWER_BYTES], media_type="application/octet-stream")


async def ready(request: Request) -> Response:
    return JSONResponse({"name": request.path_params["model_name"], "ready": True})


def _grpc_infer(request: bytes, context) -> bytes:
    return request[:ANSWER_BYTES]


async def main(http_port: int, grpc_port: int) -> None:
    app = Starlette(
        routes=[
            Route("/v1/models/{model_name}", ready),
            Route("/v1/models/{model_name}:predict", infer, methods=["POST"]),
            Route("/v2/models/{model_name}/infer", infer, methods=["POST"]),
        ]
    )
    # Bytes in, bytes out: no protobuf (de)serialising, which KServe's servicer does.
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(_grpc_infer)}
    )
    grpc_server = aio.server()
    grpc_server.add_generic_rpc_handlers((handler,))
    grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await grpc_server.start()
    config = uvicorn.Config(app, host="127.0.0.1", port=http_port, loop="none", log_level="warning", access_log=False)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await grpc_server.stop(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.http_port, args.grpc_port))
