"""N XGBoost workers on this machine, as an XGBoostJob starts them on a cluster.

`python -m mlworkloads.training.spawn --nproc-per-node N [--max-restarts R] -- COMMAND...`

XGBoost brings its own collective (a tracker and a ring), so its workers are not started by
torchrun: each gets XGBoostJob's variables (`RANK`, `WORLD_SIZE`, `MASTER_ADDR=127.0.0.1`,
`MASTER_PORT`, a free port for rank 0's tracker). Their output is prefixed with the worker
(`[worker0]:`, as torchrun prefixes its ranks). When one fails, the others are stopped (they
would wait on it) and, as torchrun's `--max-restarts`, the whole group is started again up to
R times; the trainer resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

import psutil

from mlworkloads.processes import stop_processes

POLL_SECONDS = 0.2
#: Seconds the other workers get to stop after SIGTERM once one has failed.
STOP_GRACE_SECONDS = 5.0
PYTHONS = ("python", "python3")


def local_command(command: list[str], nproc_per_node: int, max_restarts: int = 0) -> list[str]:
    """`command` on `nproc_per_node` workers here, with this interpreter."""
    return [
        sys.executable,
        "-m",
        "mlworkloads.training.spawn",
        f"--nproc-per-node={nproc_per_node}",
        f"--max-restarts={max_restarts}",
        "--",
        *[sys.executable if i == 0 and part in PYTHONS else part for i, part in enumerate(command)],
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pump(stream, prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def run_group(command: list[str], nproc: int) -> tuple[int, int]:
    """Runs one group of workers to the end; returns (0, -1) or (the first failure's code, its rank)."""
    port = _free_port()
    workers, pumps = [], []
    for rank in range(nproc):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        # Workers sharing a machine share its cores: without a limit each starts a thread per
        # core, and OpenMP's spinning threads starve each other at every allreduce (25 rounds
        # took 29 s on 2 cores instead of 0.3 s). torchrun sets the same variable for the same reason.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        workers.append(worker)
        pump = threading.Thread(target=_pump, args=(worker.stdout, f"[worker{rank}]:"), daemon=True)
        pump.start()
        pumps.append(pump)
    try:
        while True:
            failed = [(rank, w.returncode) for rank, w in enumerate(workers) if w.poll() not in (None, 0)]
            if failed:
                rank, code = failed[0]
                return code, rank
            if all(w.returncode == 0 for w in workers):
                return 0, -1
            time.sleep(POLL_SECONDS)
    finally:
        stop_processes([psutil.Process(w.pid) for w in workers if w.poll() is None], STOP_GRACE_SECONDS)
        for pump in pumps:
            pump.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlworkloads.training.spawn", description=__doc__)
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--max-restarts", type=int, default=0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.nproc_per_node < 1 or args.max_restarts < 0:
        parser.error("expected --nproc-per-node >= 1, --max-restarts >= 0 and a command after --")
    for attempt in range(args.max_restarts + 1):
        code, rank = run_group(command, args.nproc_per_node)
        if code == 0:
            return 0
        # Worded as torchrun's report, which the launcher's failure summary repeats.
        print(f"worker {rank} (rank {rank}) failed: exitcode {code}", file=sys.stderr, flush=True)
        if attempt < args.max_restarts:
            print(f"restarting the worker group ({attempt + 1}/{args.max_restarts})", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
