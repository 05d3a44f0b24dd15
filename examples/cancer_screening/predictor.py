"""The team's V1 predictor: `{"instances": [[30 measurements], ...]}` -> `{"predictions": [score, ...]}`.

A small `kserve.Model` over the TorchScript model train.py wrote; a score is the probability that
the tumour is benign.

    python predictor.py --model_name screening --model_dir ./model --http_port 8080
"""

from __future__ import annotations

import argparse
import os

import kserve
import numpy as np
import torch
from kserve.errors import InvalidInput

FEATURES = 30


class ScreeningModel(kserve.Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        self.network: torch.jit.ScriptModule | None = None

    def load(self) -> bool:
        self.network = torch.jit.load(os.path.join(self.model_dir, "model.pt")).eval()
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('expected {"instances": [[30 numbers], ...]}.')
        try:
            rows = np.asarray(instances, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise InvalidInput(f"instances must be lists of numbers: {err}") from err
        if rows.ndim != 2 or rows.shape[1] != FEATURES or not np.isfinite(rows).all():
            raise InvalidInput(f"instances must be finite and {FEATURES} numbers each, got shape {list(rows.shape)}.")
        with torch.no_grad():
            return {"predictions": [round(float(s), 6) for s in self.network(torch.from_numpy(rows))]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="Where model.pt is.")
    args, _ = parser.parse_known_args()
    model = ScreeningModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])
