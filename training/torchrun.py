"""A training command as torchrun runs it: on this machine, or on every node of a job.

A team's `command` is what each process runs (`["python", "train.py", ...]`, `["python", "-m",
"team.train"]`, or any executable); the launcher wraps it in torchrun so that every process gets
`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`, as `init_process_group`
reads them. On a cluster torchrun takes the node count, node rank and rendezvous address from
the `PET_*` variables the training operator or Trainer sets; locally it runs one standalone node.
"""

from __future__ import annotations

import sys

from mlworkloads.training.errors import ConfigError

PYTHONS = ("python", "python3")


def _program(command: list[str]) -> list[str]:
    """torchrun's arguments for `command`: a Python script or module as is, anything else with --no-python."""
    if not isinstance(command, list) or not command or not all(isinstance(part, str) and part for part in command):
        raise ConfigError(f"command={command!r}: expected a non-empty list of non-empty strings.")
    if command[0] in ("torchrun", "torch.distributed.run"):
        raise ConfigError(
            f"command={command!r} starts with torchrun: give the command each process runs (e.g. "
            '["python", "train.py"]); the launcher runs it under torchrun with the job\'s nodes and processes.'
        )
    if command[0] in PYTHONS and len(command) > 1 and (command[1] == "-m" or not command[1].startswith("-")):
        return command[1:]  # a script or `-m module`: torchrun starts it with its own interpreter
    return ["--no-python", *command]


def cluster_command(command: list[str], max_restarts: int = 0) -> list[str]:
    """The container command of every node of a PyTorchJob or TrainJob."""
    return ["torchrun", f"--max-restarts={max_restarts}", *_program(command)]


def local_command(command: list[str], nproc_per_node: int, max_restarts: int = 0) -> list[str]:
    """One standalone node on this machine, with this interpreter's torch."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc_per_node}",
        f"--max-restarts={max_restarts}",
        # `python -c ...` and the like: this interpreter, not whichever `python` is on PATH.
        *[sys.executable if part in PYTHONS else part for part in _program(command)[:2]],
        *_program(command)[2:],
    ]
