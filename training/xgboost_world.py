"""XGBoost's collective (its own allreduce, over a tracker) from whichever launcher started us.

Three launchers start XGBoost workers, and each tells them the rendezvous in its own words:

| launcher | tracker address | this worker | workers |
| --- | --- | --- | --- |
| Trainer v2.3, `xgboost-distributed` | `DMLC_TRACKER_URI`, `DMLC_TRACKER_PORT` | `DMLC_TASK_ID` | `DMLC_NUM_WORKER` |
| training operator v1.9, XGBoostJob | `MASTER_ADDR`, `MASTER_PORT` | `RANK` | `WORLD_SIZE` |
| here (`python -m mlworkloads.training.spawn`) | as XGBoostJob's, on 127.0.0.1 | | |

In both clusters the rank-0 worker runs the tracker (the runtime names rank 0's host as the
tracker's; XGBoostJob names the Master's). `world()` reads either contract, `communicator()`
starts the tracker on rank 0 and joins the group; a team's own XGBoost script can use both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator, Mapping

from mlworkloads.training.errors import ConfigError

log = logging.getLogger(__name__)

#: Seconds the tracker waits for every worker to join (data loading included) before failing:
#: a worker that never starts fails the run instead of hanging it.
BOOTSTRAP_TIMEOUT_SECONDS = 600


@dataclasses.dataclass(frozen=True)
class World:
    """One worker's place in the group: its rank, the group's size, the tracker's address."""

    rank: int
    world_size: int
    tracker_host: str = ""
    tracker_port: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world(env: Mapping[str, str] | None = None) -> World:
    """This worker's `World` from the launcher's environment; one worker when there is none.

    Raises:
        ConfigError: a variable that is not a number, or a rank outside the group.
    """
    env = os.environ if env is None else env
    if "DMLC_TRACKER_URI" in env:
        names = ("DMLC_TASK_ID", "DMLC_NUM_WORKER", "DMLC_TRACKER_URI", "DMLC_TRACKER_PORT")
    elif "MASTER_ADDR" in env and "WORLD_SIZE" in env:
        names = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    else:
        return World(rank=0, world_size=1)
    rank_name, size_name, host_name, port_name = names
    rank, size, port = (_integer(env, name) for name in (rank_name, size_name, port_name))
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"{rank_name}={rank} and {size_name}={size}: the rank must be in [0, {size}).")
    return World(rank=rank, world_size=size, tracker_host=env[host_name], tracker_port=port)


def _integer(env: Mapping[str, str], name: str) -> int:
    value = env.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected an integer (set by the job's launcher).") from None


@contextlib.contextmanager
def communicator(place: World, timeout_seconds: int = BOOTSTRAP_TIMEOUT_SECONDS) -> Iterator[None]:
    """The group, joined for the block's duration (nothing to join for one worker).

    Rank 0 starts the tracker on the launcher's port, on every interface: the other workers
    reach it by the name the launcher gave them.
    """
    if place.world_size == 1:
        yield
        return
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    tracker = None
    if place.is_main:
        tracker = RabitTracker(
            n_workers=place.world_size,
            host_ip="0.0.0.0",
            port=place.tracker_port,
            sortby="task",
            timeout=timeout_seconds,
        )
        tracker.start()
    args = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": place.tracker_host,
        "dmlc_tracker_port": place.tracker_port,
        # Sorted as text by the tracker: zero-padded, so that its rank is the launcher's.
        "dmlc_task_id": f"{place.rank:06d}",
        "dmlc_timeout": timeout_seconds,
    }
    with warnings.catch_warnings():
        # A worker that starts before rank 0's tracker retries, and XGBoost warns at each try.
        warnings.filterwarnings("ignore", message=r"(?s).*(Failed to connect|Retrying connection)")
        collective.init(**args)
    try:
        yield
    finally:
        collective.finalize()
    if tracker is not None:
        tracker.wait_for(timeout_seconds)
