"""training/torchrun.py and local.run_local: a team's command under torchrun, on a cluster's nodes or here."""

import sys

import pytest

from mlworkloads.training.errors import ConfigError, TrainingFailed
from mlworkloads.training.local import run_local
from mlworkloads.training.torchrun import cluster_command, local_command

# One write per line: two ranks share the pipe, and print() writes the text and its newline apart.
ALLREDUCE = (
    "import os, sys, torch, torch.distributed as dist; dist.init_process_group('gloo'); "
    "t = torch.ones(1) * (dist.get_rank() + 1); dist.all_reduce(t); "
    'sys.stdout.write(f\'rank {dist.get_rank()} of {dist.get_world_size()} local {os.environ["LOCAL_RANK"]}: '
    "sum {t.item():g}\\n'); sys.stdout.flush(); dist.destroy_process_group()"
)


@pytest.mark.parametrize(
    ("command", "program"),
    [
        (["python", "train.py", "--epochs", "3"], ["train.py", "--epochs", "3"]),
        (["python3", "-m", "team.train"], ["-m", "team.train"]),
        (["python", "-c", "print(1)"], ["--no-python", "python", "-c", "print(1)"]),
        (["/opt/team/bin/train", "--fast"], ["--no-python", "/opt/team/bin/train", "--fast"]),
    ],
    ids=["script", "module", "inline", "executable"],
)
def test_a_command_runs_under_torchrun_as_a_script_a_module_or_any_executable(command, program):
    assert cluster_command(command, max_restarts=2) == ["torchrun", "--max-restarts=2", *program]
    local = local_command(command, nproc_per_node=3)
    assert local[:6] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=3",
        "--max-restarts=0",
    ]
    # Locally a bare `python` is this interpreter (the venv's), not whichever is on PATH.
    assert local[6:] == [sys.executable if part == "python" else part for part in program]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ([], "expected a non-empty list"),
        (["python", ""], "expected a non-empty list of non-empty strings"),
        ("python train.py", "expected a non-empty list"),
        (["torchrun", "--nproc-per-node=2", "train.py"], "starts with torchrun: give the command each process runs"),
    ],
    ids=["empty", "empty-part", "string", "torchrun"],
)
def test_a_command_the_launcher_cannot_wrap_is_refused_naming_it(command, message):
    with pytest.raises(ConfigError, match=message):
        cluster_command(command)


def test_a_teams_inline_program_runs_as_two_ranks_here():
    lines = []
    run_local(["python", "-c", ALLREDUCE], nproc_per_node=2, echo=lines.append)
    ranks = sorted(line.strip() for line in lines if line.startswith("rank "))
    assert ranks == ["rank 0 of 2 local 0: sum 3", "rank 1 of 2 local 1: sum 3"]


def test_a_failing_rank_fails_the_run_naming_the_rank_and_what_the_caller_adds():
    crash = (
        "import os, sys; r = int(os.environ['RANK']); print(f'rank {r} up', flush=True); sys.exit(3 if r == 1 else 0)"
    )
    with pytest.raises(TrainingFailed) as err:
        run_local(["python", "-c", crash], nproc_per_node=2, echo=lambda _: None, explain_failure=lambda: "see /tmp/x")
    message = str(err.value)
    assert message.startswith("torchrun exited with code 1; see /tmp/x.")
    assert "rank 1 up" in message and "exitcode" in message
