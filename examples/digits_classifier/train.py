"""A team's own training script: a small CNN on scikit-learn's bundled 8x8 digits, trained with DDP.

It knows nothing of mlworkloads. `launch_training_job` runs it under torchrun on every process
(locally, or on the nodes of a TrainJob or PyTorchJob) and it keeps the launcher's contract:

- the data: the `.npz` at `$MLWORKLOADS_INPUT_TRAIN_DATA` (arrays `images`, `labels`), read
  with fsspec so a path and an object-store URI both work; scikit-learn's bundled copy when the
  variable is unset;
- the model: rank 0 writes `model.pt` (TorchScript: a server needs no class to load it),
  `predictions.csv` on the held-out images (with each image's row in the data) and
  `metrics.json` to `$MLWORKLOADS_MODEL_DIR`.

    torchrun --standalone --nproc-per-node=2 train.py --epochs 8
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
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

CLASSES = 10
HELD_OUT = 0.2


class DigitsCNN(nn.Module):
    """Two convolutions and a linear head over 1x8x8 images scaled to [0, 1]."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * width * 4 * 4, CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


def load(uri: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 [n, 1, 8, 8] in [0, 1] and labels as int64."""
    if uri:
        with fsspec.open(uri, "rb") as f:
            arrays = np.load(io.BytesIO(f.read()))
            images, labels = arrays["images"], arrays["labels"]
    else:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, labels = digits.images, digits.target
    return (images.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32), labels.astype(np.int64)


def split(images: np.ndarray, labels: np.ndarray, seed: int = 0):
    """The same held-out fifth on every rank (a fixed permutation); the held-out rows' indices too."""
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(order) * (1 - HELD_OUT))
    held_out = order[cut:]
    return (images[order[:cut]], labels[order[:cut]]), (images[held_out], labels[held_out]), held_out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    options = parser.parse_args()

    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    (train_x, train_y), (test_x, test_y), held_out = split(*load(os.environ.get("MLWORKLOADS_INPUT_TRAIN_DATA")))
    train = TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(train, batch_size=options.batch_size // world, sampler=sampler)
    model = DistributedDataParallel(DigitsCNN())
    optimizer = torch.optim.SGD(model.parameters(), lr=options.learning_rate, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(options.epochs):
        sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros(2)
        for images, labels in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(labels), len(labels)])
        dist.all_reduce(total)
        if rank == 0:
            print(f"epoch {epoch + 1}/{options.epochs} train_loss {total[0] / total[1]:.4f}", flush=True)

    if rank == 0:
        model.module.eval()
        with torch.no_grad():
            logits = model.module(torch.from_numpy(test_x))
        probabilities = logits.softmax(dim=1).numpy()
        predicted = probabilities.argmax(axis=1)
        accuracy = float((predicted == test_y).mean())
        held_out_loss = float(loss_fn(logits, torch.from_numpy(test_y)))
        print(f"held-out accuracy {accuracy:.4f} loss {held_out_loss:.4f}", flush=True)
        out = os.environ.get("MLWORKLOADS_MODEL_DIR", "model")
        fs, root = fsspec.core.url_to_fs(out)
        fs.makedirs(root, exist_ok=True)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(model.module), buffer)
        with fs.open(f"{root}/model.pt", "wb") as f:
            f.write(buffer.getvalue())
        # `index`: the row of the input data, so a later step can send these images again.
        header = "index,label,predicted_class," + ",".join(f"probability_{c}" for c in range(CLASSES))
        rows = [
            f"{index},{label},{guess}," + ",".join(f"{p:.6f}" for p in row)
            for index, label, guess, row in zip(held_out, test_y, predicted, probabilities, strict=True)
        ]
        with fs.open(f"{root}/predictions.csv", "w") as f:
            f.write("\n".join([header, *rows]) + "\n")
        with fs.open(f"{root}/metrics.json", "w") as f:
            json.dump({"accuracy": accuracy, "held_out_loss": held_out_loss, "world_size": world}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
