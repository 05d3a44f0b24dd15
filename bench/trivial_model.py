"""A trivial KServe model that returns its input: the baseline the predictor is measured against.

V1 goes through KServe's own route. V2 goes through the predictor's V2 route
(serving/v2_rest.py, installed the same way), so that a V2 request to this model costs what
the predictor's does without its model: the first input comes back as the one output.

Run: python bench/trivial_model.py --http_port PORT --model_name echo
"""

import argparse

from kserve import Model, ModelServer, model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlworkloads.serving import v2_rest


class Echo(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            first = payload.inputs[0]
            output = InferOutput(first.name, first.shape, first.datatype, first.data)
            output._raw_data = first._raw_data  # binary in, binary out
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])
        return {"predictions": payload.get("instances", [])} if isinstance(payload, dict) else payload


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port)
    v2_rest.install(model_server.app, server.dataplane)
    server.start([Echo(args.model_name)])
