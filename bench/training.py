"""Training: the trainer's epoch loop against a bare hand-written PyTorch loop, and DDP scaling.

Run: .venv/bin/python bench/training.py [--smoke]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import Report, parser  # noqa: E402


def _features(directory: str, rows: int | None) -> dict[str, str]:
    import pyarrow.parquet as pq

    from mlworkloads.data import steps
    from mlworkloads.data.flights import FLIGHTS_TASK, FLIGHTS_URI
    from mlworkloads.data.ingest import IngestConfig
    from mlworkloads.data.preprocessor import PreprocessorOptions

    raw = os.path.join(directory, "raw.parquet")
    steps.ingest_step(IngestConfig(source_uri=FLIGHTS_URI, max_rows=rows or 0, **FLIGHTS_TASK), raw,
                      os.path.join(directory, "report.md"))  # fmt: skip
    splits = {n: os.path.join(directory, f"{n}.parquet") for n in ("train", "validation", "test")}
    steps.split_step(raw, splits, "late", 0.1, 0.1, 0, True)
    features = {n: os.path.join(directory, f"{n}_features.parquet") for n in splits}
    steps.preprocess_step(splits, PreprocessorOptions(label_column="late", categorical_columns=["flight"]),
                          os.path.join(directory, "preprocessor.json"), features)  # fmt: skip
    assert pq.read_metadata(features["train"]).num_rows > 0
    return {"train": features["train"], "validation": features["validation"],
            "preprocessor": os.path.join(directory, "preprocessor.json")}  # fmt: skip


def _config(features, out, epochs):
    from mlworkloads.training.config import TrainConfig

    return TrainConfig(train_uri=features["train"], validation_uri=features["validation"],
                       preprocessor_uri=features["preprocessor"], output_uri=out, epochs=epochs, dropout=0.0,
                       early_stopping_patience=0)  # fmt: skip


def ours_samples_per_second(features, out, epochs) -> float:
    """The trainer's own epoch loop, one process, tensors in memory (what train_epoch reports)."""
    from mlworkloads.training import distributed
    from mlworkloads.training.trainer import Trainer

    trainer = Trainer(_config(features, out, epochs), distributed.init("cpu"))
    rates = []
    for _ in range(epochs):
        rates.append(trainer.train_epoch()[1])
        trainer.epoch += 1
    return max(rates)


def bare_samples_per_second(features, epochs) -> float:
    """A hand-written loop: same model, batch size, optimizer and in-memory tensors."""
    import torch

    from mlworkloads.training.model import TabularNet
    from mlworkloads.training.trainer import load_preprocessor, load_split

    preprocessor = load_preprocessor(features["preprocessor"])
    data = load_split(features["train"], preprocessor, torch.device("cpu"))
    torch.manual_seed(0)
    model = TabularNet(preprocessor.numeric_width, preprocessor.cardinalities, 1, [128, 64], 0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    batch = 1024
    rates = []
    for _ in range(epochs):
        order = torch.randperm(len(data))
        steps = len(data) // batch
        started = time.perf_counter()
        for i in range(steps):
            rows = order[i * batch : (i + 1) * batch]
            logits = model(data.numeric[rows], data.categorical[rows])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], data.labels[rows].float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        rates.append(steps * batch / (time.perf_counter() - started))
    return max(rates)


def torchrun_samples_per_second(features, out, epochs, nproc) -> tuple[float, float]:
    """(samples/s of the best epoch, time to first step) of the real entry point under torchrun."""
    config = _config(features, out, epochs)
    path = out + ".json"
    with open(path, "w") as f:
        f.write(config.to_json())
    from mlworkloads.training.local import torchrun_command

    result = subprocess.run(torchrun_command(path, nproc), capture_output=True, text=True, check=True)
    rates = [float(m) for m in re.findall(r"([0-9]+) samples/s", result.stdout + result.stderr)]
    with open(os.path.join(out, "metrics.json")) as f:
        first = json.load(f)["time_to_first_step_seconds"]
    return max(rates), first


def main() -> int:
    args = parser(__doc__).parse_args()
    import torch

    torch.set_num_threads(1)  # the 1-process figures compare like with like: one core each
    report = Report(args.smoke)
    epochs = 1 if args.smoke else 3
    with tempfile.TemporaryDirectory() as tmp:
        features = _features(tmp, 20_000 if args.smoke else None)
        bare = bare_samples_per_second(features, epochs)
        ours = ours_samples_per_second(features, os.path.join(tmp, "ours"), epochs)
        one, first_step = torchrun_samples_per_second(features, os.path.join(tmp, "one"), epochs, 1)
        two, _ = torchrun_samples_per_second(features, os.path.join(tmp, "two"), epochs, 2)
    report.figure("training.bare_loop_samples_per_s", bare, fmt="{:.0f}")
    report.figure("training.trainer_samples_per_s", ours, fmt="{:.0f}")
    report.figure("training.trainer_vs_bare_loop", ours / bare, ">= 0.9x", ours / bare >= 0.9)
    report.figure("training.torchrun_1proc_samples_per_s", one, fmt="{:.0f}")
    report.figure("training.ddp_2proc_gloo_samples_per_s", two, "report only", fmt="{:.0f}")
    report.figure("training.ddp_2proc_scaling_efficiency", two / (2 * one), "report only; 2 cores")
    report.figure("training.time_to_first_step_s", first_step, "report only")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
