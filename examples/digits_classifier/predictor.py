"""A team's own KServe predictor for the digits CNN: V2 tensors in, class probabilities out.

A small `kserve.Model` subclass, as KServe's own servers are: it loads the TorchScript
`model.pt` that train.py wrote (KServe's storage initializer puts it in `--model_dir`) and takes
one V2 input, `images`, FP32 of shape [n, 64] or [n, 1, 8, 8] (8x8 digits scaled to [0, 1]).
It answers `probabilities` (FP32, [n, 10]) and `predicted_class` (INT64, [n]).

    python predictor.py --model_name digits --model_dir ./model --http_port 8080
"""

from __future__ import annotations

import argparse
import os
import uuid

import kserve
import numpy as np
import torch
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class DigitsModel(kserve.Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.network: torch.jit.ScriptModule | None = None

    def load(self) -> bool:
        self.network = torch.jit.load(os.path.join(self.model_dir, "model.pt"))
        self.network.eval()
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        inputs = {i.name: i for i in payload.inputs}
        if set(inputs) != {"images"}:
            raise InvalidInput(f'expected one input named "images", got {sorted(inputs)}.')
        item = inputs["images"]
        if item.datatype != "FP32":
            raise InvalidInput(f'input "images" must be FP32, not {item.datatype}.')
        images = np.asarray(item.as_numpy(), dtype=np.float32)
        if (images.ndim == 2 and images.shape[1] == 64) or images.shape[1:] == (1, 8, 8):
            images = images.reshape(-1, 1, 8, 8)
        else:
            raise InvalidInput(f'input "images" must have shape [n, 64] or [n, 1, 8, 8], got {list(images.shape)}.')
        if not np.isfinite(images).all():
            raise InvalidInput('input "images" holds NaN or infinity.')
        with torch.no_grad():
            probabilities = self.network(torch.from_numpy(images)).softmax(dim=1).numpy()
        outputs = [
            InferOutput("probabilities", list(probabilities.shape), "FP32", probabilities.ravel().tolist()),
            InferOutput("predicted_class", [len(images)], "INT64", probabilities.argmax(axis=1).tolist()),
        ]
        request_id = payload.id or str(uuid.uuid4())  # V2 answers with the request's id, or one of its own
        return InferResponse(response_id=request_id, model_name=self.name, infer_outputs=outputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="Where model.pt is.")
    args, _ = parser.parse_known_args()
    model = DigitsModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])
