"""A trivial KServe model that returns its input: the baseline the predictor is measured against.

Run: python bench/trivial_model.py --http_port PORT --model_name echo
"""

import argparse

from kserve import Model, ModelServer, model_server


class Echo(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        return {"predictions": payload.get("instances", [])} if isinstance(payload, dict) else payload


if __name__ == "__main__":
    args, _ = argparse.ArgumentParser(parents=[model_server.parser]).parse_known_args()
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port).start([Echo(args.model_name)])
