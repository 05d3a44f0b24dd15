"""The predictor's V2 gRPC API: KServe's own gRPC server and servicer, with each request's tensors
checked by name before KServe reads them.

KServe 0.21 turns a tensor of an unknown datatype into "invalid content type" (no tensor named)
while building its `InferRequest`; everything after that is checked by the predictor
(`payload.py`, `tensors.py`) and raised as `InvalidInput`, which KServe's interceptor answers
with INVALID_ARGUMENT. The checks here run first, in the servicer KServe's `GRPCServer` builds.
"""

from __future__ import annotations

from kserve.errors import InvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import server as grpc_server
from kserve.protocol.grpc.servicer import InferenceServicer

from mlworkloads.data import tensors
from mlworkloads.data.errors import TensorError


class CheckedInferenceServicer(InferenceServicer):
    """KServe's servicer, refusing a tensor with an unknown datatype or a negative dimension by name."""

    @classmethod
    def validate_grpc_request(cls, request: pb.ModelInferRequest) -> None:
        for item in request.inputs:
            try:
                tensors.check_datatype(item.name, item.datatype)
            except TensorError as err:
                raise InvalidInput(str(err)) from err
            if any(d < 0 for d in item.shape):
                raise InvalidInput(f"input {item.name!r}: shape must be whole numbers >= 0, got {list(item.shape)}.")
        super().validate_grpc_request(request)


def install() -> None:
    """Makes KServe's `GRPCServer` serve with `CheckedInferenceServicer` (it names its servicer
    class at module level and takes no other)."""
    grpc_server.InferenceServicer = CheckedInferenceServicer
