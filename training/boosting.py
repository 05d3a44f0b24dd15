"""Gradient-boosted trees (XGBoost) on the preprocessed features, on one worker or many.

Run one copy per worker: `python -m mlworkloads.training.boosting --config-json ...`, started by
an XGBoostJob, a TrainJob on the `xgboost-distributed` runtime, or `mlworkloads.training.spawn`
here (`xgboost_world.py` reads whichever started it). Each worker reads its share of the rows
(every `world_size`-th, from its rank); XGBoost's allreduce sums the histograms, so the trees
are the ones a single worker would grow on all rows, up to the quantile sketch.

Shape (as the network's trainer): rank 0 logs, checkpoints and exports. A checkpoint is the
booster itself (`checkpoint-<round>.ubj`) carrying the early-stopping state and the history as
attributes; a restarted group resumes from it: rank 0 reads it and broadcasts it, so every
worker continues from the same trees.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import xgboost as xgb

from mlworkloads.data.errors import DataError
from mlworkloads.data.preprocessor import Preprocessor
from mlworkloads.data.storage import atomic_open, read_bytes
from mlworkloads.training import checkpoint, quality, tracking, xgboost_world
from mlworkloads.training.boosting_config import BoostingConfig
from mlworkloads.training.boosting_model import BoosterScorer, feature_matrix, feature_types
from mlworkloads.training.config import config_text
from mlworkloads.training.errors import ConfigError
from mlworkloads.training.export import XGBOOST, predicted_class_shares, write_model_dir
from mlworkloads.training.logs import rank_zero_logger
from mlworkloads.training.model import feature_spec

CHECKPOINT_SUFFIX = ".ubj"
#: Rounds between progress lines in the log.
LOG_INTERVAL = 25
#: The booster attribute that carries the run's state through a checkpoint.
STATE_ATTRIBUTE = "mlworkloads_state"


def load_rows(
    uri: str, preprocessor: Preprocessor, rank: int = 0, world_size: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """This worker's rows of a preprocessed split (every `world_size`-th from `rank`) as (features, labels)."""
    table = pq.read_table(io.BytesIO(read_bytes(uri)))
    if world_size > 1:
        table = table.take(np.arange(rank, table.num_rows, world_size))
    features, labels = preprocessor.from_table(table)
    return feature_matrix(features.numeric, features.categorical), labels


class Progress(xgb.callback.TrainingCallback):
    """Early stopping, the history, rank-0 logging and checkpoints, resumable as one state.

    XGBoost's own `EarlyStopping` forgets its best score when training continues from a saved
    booster; this keeps it in the booster, so a resumed run stops where an uninterrupted one would.
    """

    def __init__(
        self, config: BoostingConfig, metric: str, maximize: bool, place, log, state: dict[str, Any], tracked=None
    ):
        super().__init__()
        self.config, self.metric, self.maximize, self.place, self.log = config, metric, maximize, place, log
        self.state = state
        self.started = time.perf_counter()
        self.tracked, self.untracked = tracked, []  # rounds not yet sent to MLflow

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log) -> bool:
        rounds = model.num_boosted_rounds()
        score = float(evals_log["validation"][self.metric][-1])
        best = self.state["best_score"]
        improved = best is None or (score > best if self.maximize else score < best)
        if improved:
            self.state.update(best_score=score, best_iteration=rounds - 1)
        self.state["history"].append({"round": rounds - 1, f"validation_{self.metric}": score})
        patience = self.config.early_stopping_rounds
        stop = bool(patience) and rounds - 1 - self.state["best_iteration"] >= patience
        self.state["stopped_early"] = stop
        if rounds % LOG_INTERVAL == 0 or stop or rounds == self.config.num_boost_round:
            self.log.info(
                "round %d/%d  val_%s %.4f  best %.4f at round %d  %.1f s",
                rounds,
                self.config.num_boost_round,
                self.metric,
                score,
                self.state["best_score"],
                self.state["best_iteration"] + 1,
                time.perf_counter() - self.started,
            )
        if self.place.is_main and (rounds % self.config.checkpoint_interval == 0 or stop):
            save_checkpoint(self.config.checkpoint_uri, model, self.state)
        if self.tracked:
            self.untracked.append((rounds - 1, score))
            if len(self.untracked) >= LOG_INTERVAL or stop or rounds == self.config.num_boost_round:
                self.flush()
        return stop

    def flush(self) -> None:
        """Sends the rounds' validation metric to MLflow, one call per batch of rounds."""
        if self.tracked and self.untracked:
            self.tracked.log_metric_steps(f"validation_{self.metric}", self.untracked)
        self.untracked = []


def save_checkpoint(directory: str, booster: xgb.Booster, state: dict[str, Any]) -> None:
    booster.set_attr(**{STATE_ATTRIBUTE: json.dumps(state)})
    rounds = booster.num_boosted_rounds()
    checkpoint.save_payload(directory, rounds - 1, bytes(booster.save_raw("ubj")), CHECKPOINT_SUFFIX, unit="round")


def resume(config: BoostingConfig, place, log) -> tuple[xgb.Booster | None, dict[str, Any]]:
    """The latest checkpoint's booster and state (rank 0 reads it, every worker gets the same), or none."""
    fresh = {"best_score": None, "best_iteration": -1, "history": [], "stopped_early": False}
    payload = None
    if place.is_main:
        latest = checkpoint.load_latest_payload(config.checkpoint_uri)
        payload = latest[1] if latest else None
    if place.world_size > 1:
        from xgboost import collective

        # The root must send something: b"" says "no checkpoint".
        payload = collective.broadcast(payload or b"", 0) or None
    if payload is None:
        return None, fresh
    booster = xgb.Booster(model_file=bytearray(payload))
    state = json.loads(booster.attr(STATE_ATTRIBUTE) or "null") or fresh
    log.info("resumed after round %d (best round %d)", booster.num_boosted_rounds(), state["best_iteration"] + 1)
    return booster, state


def _check_labels(labels: np.ndarray, task: str, classes: int, uri: str, place) -> None:
    """Refuses a train split whose labels (over every worker) hold one class: nothing to split on."""
    if task == "regression":
        return
    counts = np.bincount(labels.astype(np.int64), minlength=classes).astype(np.float64)
    if place.world_size > 1:
        from xgboost import collective

        counts = collective.allreduce(counts, collective.Op.SUM)
    present = int((counts > 0).sum())
    if present < 2:
        raise DataError(
            f"the train features at {uri!r} hold labels of one class only: the trees have nothing to learn."
        )


def train(config: BoostingConfig, place: xgboost_world.World) -> dict[str, Any]:
    """Trains (resuming from the latest checkpoint), exports from rank 0; returns the summary."""
    log = rank_zero_logger(place)
    preprocessor = Preprocessor.from_json(read_bytes(config.preprocessor_uri).decode(), source=config.preprocessor_uri)
    task, spec = preprocessor.task, feature_spec(preprocessor)
    types = feature_types(spec, config.categorical_encoding)
    features, labels = load_rows(config.train_uri, preprocessor, place.rank, place.world_size)
    _check_labels(labels, task, len(preprocessor.classes or []), config.train_uri, place)
    validation_features, validation_labels = load_rows(
        config.validation_uri, preprocessor, place.rank, place.world_size
    )
    params = config.booster_params(task, len(preprocessor.classes or []))
    started = time.perf_counter()
    train_matrix = xgb.QuantileDMatrix(
        features, labels, feature_types=types, enable_categorical=True, max_bin=config.max_bin
    )
    validation = xgb.QuantileDMatrix(
        validation_features, validation_labels, ref=train_matrix, feature_types=types, enable_categorical=True
    )
    booster, state = resume(config, place, log)
    done = booster.num_boosted_rounds() if booster is not None else 0
    log.info(
        "training %s boosted trees on %d rows (%d worker%s, %d features, %s categories) from round %d",
        task,
        train_matrix.num_row() * place.world_size,
        place.world_size,
        "" if place.world_size == 1 else "s",
        train_matrix.num_col(),
        config.categorical_encoding,
        done,
    )
    metric = params["eval_metric"]
    # Rank 0 tracks; an unreachable server fails the run here, before any training.
    tracked = tracking.start(config.tracking, "train") if place.is_main else None
    if tracked:
        tracked.log_params({**json.loads(config.to_json()), "task": task, "world_size": place.world_size})
    progress = Progress(config, metric, maximize=metric == "auc", place=place, log=log, state=state, tracked=tracked)
    if done < config.num_boost_round and not state["stopped_early"]:
        booster = xgb.train(
            params,
            train_matrix,
            num_boost_round=config.num_boost_round - done,
            evals=[(validation, "validation")],
            xgb_model=booster,
            callbacks=[progress],
            verbose_eval=False,
        )
    seconds = time.perf_counter() - started
    progress.flush()
    if state["stopped_early"]:
        log.info("early stop: no better validation %s for %d rounds", metric, config.early_stopping_rounds)
    summary = finish(config, booster, preprocessor, state, place, seconds, log)
    if tracked:
        best = {f"best_{name}": value for name, value in summary["metrics"].items()}
        tracked.log_metrics({**best, "best_round": summary["best_round"]})
        tracked.log_dict({"history": state["history"], **summary}, "training/metrics.json")
        tracked.set_tags({"mlworkloads.model_uri": config.output_uri})
    return summary


def finish(config, booster, preprocessor, state, place, seconds, log) -> dict[str, Any]:
    """Scores the whole validation split with the best round's trees; rank 0 writes the model."""
    task, spec = preprocessor.task, feature_spec(preprocessor)
    best_iteration = state["best_iteration"] if state["best_iteration"] >= 0 else booster.num_boosted_rounds() - 1
    summary = {
        "best_round": best_iteration + 1,
        "rounds_run": booster.num_boosted_rounds(),
        "training_seconds": seconds,
        "world_size": place.world_size,
        "xgboost_version": xgb.__version__,
    }
    if place.is_main:
        scorer = BoosterScorer(booster=booster, task=task, rounds=best_iteration + 1)
        scorer.booster.set_param({"nthread": config.nthread or 0})
        table = pq.read_table(io.BytesIO(read_bytes(config.validation_uri)))
        features, labels = preprocessor.from_table(table)
        scores = scorer(features.numeric, features.categorical)
        summary["metrics"] = {f"validation_{k}": v for k, v in quality.compute(task, labels, scores).items()}
        booster.set_attr(**{STATE_ATTRIBUTE: None})  # the model carries the trees, not the run's state
        write_model_dir(
            config.output_uri,
            XGBOOST,
            bytes(booster.save_raw("ubj")),
            preprocessor,
            {
                "task": task,
                "feature_spec": spec,
                "categorical_encoding": config.categorical_encoding,
                "best_iteration": best_iteration,
                "primary_metric": quality.PRIMARY_METRIC[task][0],
                "settings": json.loads(config.to_json()),
                "validation_class_shares": predicted_class_shares(task, scores, preprocessor.classes),
                **summary,
            },
        )
        with atomic_open(config.output_uri.rstrip("/") + "/metrics.json") as f:
            document = {"history": state["history"], **summary}
            f.write(json.dumps(document, indent=2, sort_keys=True, default=float).encode())
        log.info("model written to %s (best round %d)", config.output_uri, best_iteration + 1)
    return summary


def run(config: BoostingConfig) -> dict[str, Any]:
    """Trains with the group the launcher described (`xgboost_world.world()`), or alone."""
    place = xgboost_world.world()
    with xgboost_world.communicator(place):
        return train(config, place)


def main(argv: list[str] | None = None) -> int:
    try:
        config = BoostingConfig.from_json(config_text(argv, "python -m mlworkloads.training.boosting", __doc__))
        run(config)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
