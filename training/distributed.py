"""Process-group set-up from torchrun's environment."""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class World:
    """Where this process sits: `rank` makes global decisions, `local_rank` picks the device."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device_preference: str = "auto") -> World:
    """Initialises the process group once (NCCL on GPU, gloo on CPU) from torchrun's variables.

    Runs single-process without a process group when not launched by torchrun.
    """
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_preference == "cuda" or (device_preference == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' but no CUDA device is visible to this process.")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
                "nproc_per_node must not exceed the GPUs per node."
            )
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        # torchrun keeps one store across restarts of the worker group; gloo would find the
        # previous round's peer addresses under the same keys and hang connecting to them.
        # A prefix per restart gives every round its own keys.
        store, _, _ = next(dist.rendezvous("env://"))
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            store=dist.PrefixStore(f"mlworkloads/restart-{restart}", store),
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=10),
        )
    return World(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
