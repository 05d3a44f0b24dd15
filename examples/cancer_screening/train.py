"""A team's training script: logistic regression in PyTorch on scikit-learn's bundled breast-cancer
table (569 rows, 30 features, no download), data-parallel over however many processes torchrun starts.

It keeps the launcher's contract (see ../digits_classifier/README.md): rank 0 writes the model
(`model.pt`, TorchScript, with the feature scaling built in), `predictions.csv` for the held-out
rows (the label and the positive class's `score`) and `metrics.json` to `$MLWORKLOADS_MODEL_DIR`.

    torchrun --standalone --nproc-per-node=2 train.py --epochs 200
"""

from __future__ import annotations

import argparse
import io
import json
import os

import fsspec
import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.nn.parallel import DistributedDataParallel


class Screening(nn.Module):
    """Standardises the 30 measurements with the training set's statistics, then a logistic layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.numel(), 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The probability that a tumour is benign (the dataset's class 1)."""
        return torch.sigmoid(self.linear((features - self.mean) / self.std)).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    options = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    features, labels = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(0.8 * len(order))
    train, held_out = order[:cut], order[cut:]
    x = torch.tensor(features[train], dtype=torch.float32)
    y = torch.tensor(labels[train], dtype=torch.float32)
    model = DistributedDataParallel(Screening(x.mean(0), x.std(0)))
    optimizer = torch.optim.SGD(model.parameters(), lr=options.learning_rate)
    mine = slice(rank, None, world)  # each process its share of the rows; DDP averages the gradients
    for epoch in range(options.epochs):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy(model(x[mine]), y[mine])
        loss.backward()
        optimizer.step()
        if rank == 0 and (epoch + 1) % 50 == 0:
            print(f"epoch {epoch + 1}/{options.epochs} train_loss {loss.item():.4f}", flush=True)

    if rank == 0:
        network = model.module.eval()
        with torch.no_grad():
            scores = network(torch.tensor(features[held_out], dtype=torch.float32)).numpy()
        accuracy = float(((scores >= 0.5) == labels[held_out]).mean())
        print(f"held-out accuracy {accuracy:.4f}", flush=True)
        fs, root = fsspec.core.url_to_fs(os.environ.get("MLWORKLOADS_MODEL_DIR", "model"))
        fs.makedirs(root, exist_ok=True)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(network), buffer)
        with fs.open(f"{root}/model.pt", "wb") as f:
            f.write(buffer.getvalue())
        with fs.open(f"{root}/predictions.csv", "w") as f:
            f.write("index,label,score\n")
            f.writelines(f"{i},{labels[i]},{s:.6f}\n" for i, s in zip(held_out, scores, strict=True))
        with fs.open(f"{root}/metrics.json", "w") as f:
            json.dump({"accuracy": accuracy, "world_size": world}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
