"""The DDP training loop: run one copy per process under torchrun.

Shape (as in torchtitan and the PyTorch DDP examples): parse config, set up logging, pick the
device from LOCAL_RANK, init_process_group once, build, train, destroy_process_group. Only
global rank 0 logs, checkpoints and exports; every process resumes from the latest checkpoint
on start, because PyTorchJob restarts pods.
"""

from __future__ import annotations

import dataclasses
import io
import math
import random
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mlworkloads.data.preprocessor import Preprocessor
from mlworkloads.data.storage import atomic_open, read_bytes
from mlworkloads.training import checkpoint, distributed, export, quality, tracking
from mlworkloads.training.config import TrainConfig
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.logs import rank_zero_logger
from mlworkloads.training.model import build_model, feature_spec


def _process_age() -> float:
    """Seconds since this process started (the time-to-first-step clock starts at exec, not import)."""
    import psutil

    return time.time() - psutil.Process().create_time()


@dataclasses.dataclass
class Split:
    """One split held in memory as tensors."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


def load_split(uri: str, preprocessor: Preprocessor, device: torch.device) -> Split:
    """Reads preprocessed features (Parquet, any fsspec URI) into tensors on `device`."""
    table = pq.read_table(io.BytesIO(read_bytes(uri)))
    features, labels = preprocessor.from_table(table)
    return Split(
        numeric=torch.from_numpy(features.numeric).to(device),
        categorical=torch.from_numpy(features.categorical).to(device),
        labels=torch.from_numpy(labels).to(device),
    )


def load_preprocessor(uri: str) -> Preprocessor:
    return Preprocessor.from_json(read_bytes(uri).decode(), source=uri)


class Trainer:
    """Owns the model, optimizer, data and history of one run."""

    def __init__(self, config: TrainConfig, world: distributed.World):
        self.config = config
        self.world = world
        self.log = rank_zero_logger(world)
        self.tracked: tracking.TrackedRun | None = None
        if config.batch_size % world.world_size:
            raise ConfigError(
                f"batch_size={config.batch_size} is not divisible by the {world.world_size} processes: "
                "the global batch is split evenly across them."
            )
        self.local_batch = config.batch_size // world.world_size
        self.preprocessor = load_preprocessor(config.preprocessor_uri)
        self.task = self.preprocessor.task
        self.train = load_split(config.train_uri, self.preprocessor, world.device)
        self.validation = load_split(config.validation_uri, self.preprocessor, world.device)
        self.target_scale = self._target_scale()
        self.spec = feature_spec(self.preprocessor)
        self.architecture = {
            "hidden_sizes": config.hidden_sizes,
            "dropout": config.dropout,
            "embedding_dim": config.embedding_dim,
            "model_factory": config.model_factory,
        }
        torch.manual_seed(config.seed)
        self.model = build_model(self.spec, self.architecture).to(world.device)
        self.ddp_model: nn.Module = self.model
        if world.world_size > 1:
            device_ids = [world.local_rank] if world.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.sampler = DistributedSampler(
            range(len(self.train)),
            num_replicas=world.world_size,
            rank=world.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=True,
        )
        self.steps_per_epoch = len(self.sampler) // self.local_batch
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"batch_size={config.batch_size} is larger than the {len(self.train)} train rows: "
                "lower it so an epoch has at least one step."
            )
        total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda(total_steps))
        self.loss_fn = self._loss_fn()
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"metric": None, "epoch": -1, "state": None}
        self.stopped_early = False
        self.first_step_seconds: float | None = None

    # ---- set-up helpers ----------------------------------------------------------------

    def _target_scale(self) -> dict[str, float] | None:
        if self.task != "regression":
            return None
        labels = self.train.labels.double()
        return {"mean": float(labels.mean()), "std": float(labels.std()) or 1.0}

    def _lr_lambda(self, total_steps: int):
        if self.config.lr_schedule == "constant":
            return lambda step: 1.0
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    def _loss_fn(self):
        if self.task == "binary":
            return lambda logits, y: nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        if self.task == "multiclass":
            return lambda logits, y: nn.functional.cross_entropy(logits, y.long())
        mean, std = self.target_scale["mean"], self.target_scale["std"]
        return lambda logits, y: nn.functional.mse_loss(logits[:, 0], (y.float() - mean) / std)

    # ---- checkpointing -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng": rng,
            "history": self.history,
            "best": self.best,
            "stopped_early": self.stopped_early,
            "world_size": self.world.world_size,
        }

    def resume(self) -> bool:
        state = checkpoint.load_latest(self.config.checkpoint_uri)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        random.setstate((3, tuple(state["rng"]["python"]), None))
        self.epoch = state["epoch"] + 1
        self.step = state["step"]
        self.history = state["history"]
        self.best = state["best"]
        self.stopped_early = state["stopped_early"]
        self.log.info("resumed after epoch %d (step %d)", state["epoch"], self.step)
        return True

    # ---- the loop ----------------------------------------------------------------------

    def train_epoch(self) -> tuple[float, float]:
        """One pass over this process's shard; returns (mean loss, global samples per second)."""
        self.ddp_model.train()
        self.sampler.set_epoch(self.epoch)
        order = torch.tensor(list(self.sampler), device=self.world.device)
        use_bf16 = self.world.device.type == "cuda"
        total = torch.zeros((), device=self.world.device, dtype=torch.float64)
        started = time.perf_counter()
        for i in range(self.steps_per_epoch):
            rows = order[i * self.local_batch : (i + 1) * self.local_batch]
            with torch.autocast(device_type=self.world.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = self.ddp_model(self.train.numeric[rows], self.train.categorical[rows])
                loss = self.loss_fn(logits.float(), self.train.labels[rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            total += loss.detach()
            if self.first_step_seconds is None:
                self.first_step_seconds = _process_age()
        elapsed = time.perf_counter() - started
        if self.world.world_size > 1:
            dist.all_reduce(total)
            total /= self.world.world_size
        samples = self.steps_per_epoch * self.config.batch_size
        return float(total) / self.steps_per_epoch, samples / elapsed

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        numeric, categorical, labels = (
            self.validation.numeric,
            self.validation.categorical,
            self.validation.labels,
        )
        outputs = [self.model(numeric[i : i + 8192], categorical[i : i + 8192]) for i in range(0, len(labels), 8192)]
        logits = torch.cat(outputs).float()
        result = {"loss": float(self.loss_fn(logits, labels))}
        scores = export.scores_from_logits(self.task, logits.cpu().numpy(), self.target_scale)
        result.update(quality.compute(self.task, labels.cpu().numpy(), scores))
        self.validation_scores = scores
        return result

    def fit(self) -> dict[str, Any]:
        """Trains to the end (or early stop), checkpointing every epoch; rank 0 exports."""
        metric_name, _ = quality.PRIMARY_METRIC[self.task]
        # Rank 0 tracks; an unreachable server fails the run here, before any training.
        self.tracked = tracking.start(self.config.tracking, "train") if self.world.is_main else None
        if self.tracked:
            self.tracked.log_params(
                {**dataclasses.asdict(self.config), "task": self.task, "world_size": self.world.world_size}
            )
        self.resume()
        self.log.info(
            "training %s on %d rows (%d processes, batch %d, %d steps/epoch) on %s",
            self.task,
            len(self.train),
            self.world.world_size,
            self.config.batch_size,
            self.steps_per_epoch,
            self.world.device,
        )
        while self.epoch < self.config.epochs and not self.stopped_early:
            started = time.perf_counter()
            train_loss, samples_per_second = self.train_epoch()
            scores = self.validate()
            improved = quality.is_better(self.task, scores[metric_name], self.best["metric"])
            if improved:
                state = {k: v.detach().clone().cpu() for k, v in self.model.state_dict().items()}
                self.best = {"metric": scores[metric_name], "epoch": self.epoch, "state": state}
            patience = self.config.early_stopping_patience
            self.stopped_early = bool(patience) and self.epoch - self.best["epoch"] >= patience
            record = {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "validation_loss": scores["loss"],
                f"validation_{metric_name}": scores[metric_name],
                "samples_per_second": samples_per_second,
                "learning_rate": self.scheduler.get_last_lr()[0],
                "seconds": time.perf_counter() - started,
            }
            self.history.append(record)
            self.log.info(
                "epoch %d/%d  loss %.4f  val_loss %.4f  val_%s %.4f  %.0f samples/s%s",
                self.epoch + 1,
                self.config.epochs,
                train_loss,
                scores["loss"],
                metric_name,
                scores[metric_name],
                samples_per_second,
                "  (best)" if improved else "",
            )
            if self.tracked:
                self.tracked.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=self.epoch)
            if self.world.is_main:
                checkpoint.save(self.config.checkpoint_uri, self.epoch, self.state())
            if self.world.world_size > 1:
                dist.barrier()
            self.epoch += 1
        if self.stopped_early:
            self.log.info("early stop: no better validation %s for %d epochs", metric_name, patience)
        return self.finish(metric_name)

    def finish(self, metric_name: str) -> dict[str, Any]:
        best_state = self.best["state"] or self.model.state_dict()
        self.model.load_state_dict(best_state)
        final = self.validate()
        summary = {
            "best_epoch": self.best["epoch"],
            "epochs_run": len(self.history),
            "metrics": {f"validation_{k}": v for k, v in final.items()},
            "samples_per_second": float(np.mean([h["samples_per_second"] for h in self.history]))
            if self.history
            else 0.0,
            "time_to_first_step_seconds": self.first_step_seconds,
            "torch_version": torch.__version__,
            "world_size": self.world.world_size,
        }
        shares = export.predicted_class_shares(self.task, self.validation_scores, self.preprocessor.classes)
        if self.world.is_main:
            export.export(
                self.config.output_uri,
                best_state,
                self.preprocessor,
                {
                    "task": self.task,
                    "architecture": self.architecture,
                    "feature_spec": self.spec,
                    "target_scale": self.target_scale,
                    "primary_metric": metric_name,
                    "torch_version": torch.__version__,
                    "world_size": self.world.world_size,
                    "device": self.world.device.type,
                    "seed": self.config.seed,
                    "validation_class_shares": shares,
                    **summary,
                },
            )
            with atomic_open(self.config.output_uri.rstrip("/") + "/metrics.json") as f:
                f.write(_json({"history": self.history, **summary}).encode())
            self.log.info("model written to %s (best epoch %d)", self.config.output_uri, self.best["epoch"] + 1)
            if self.tracked:
                best = {f"best_{name}": value for name, value in summary["metrics"].items()}
                self.tracked.log_metrics({**best, "best_epoch": self.best["epoch"]})
                self.tracked.log_dict({"history": self.history, **summary}, "training/metrics.json")
                self.tracked.set_tags({"mlworkloads.model_uri": self.config.output_uri})
        return summary


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=float)


def run(config: TrainConfig) -> dict[str, Any]:
    """Trains with the process group torchrun set up (or single-process without torchrun)."""
    world = distributed.init(config.device)
    try:
        return Trainer(config, world).fit()
    finally:
        distributed.shutdown()
