"""The exported model directory: what the trainers write and the evaluator and predictor load.

model.pt            the network (`family: network`): its state_dict, loaded with torch.load(weights_only=True)
model.ubj           the boosted trees (`family: xgboost`): the booster in XGBoost's own format
model.json          family, task, feature spec, the family's settings, versions and final metrics
preprocessor.json   the preprocessor the model was trained with

Both families score the preprocessor's `Features`, so evaluation and serving take either.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import special

from mlworkloads.data.preprocessor import Columns, Preprocessor
from mlworkloads.data.storage import atomic_open, filesystem
from mlworkloads.training.errors import ModelDirError
from mlworkloads.training.inference import Forward, forward_function
from mlworkloads.training.model import build_model, feature_spec

MODEL_FILE = "model.pt"
BOOSTER_FILE = "model.ubj"
CONFIG_FILE = "model.json"
PREPROCESSOR_FILE = "preprocessor.json"
MODEL_FORMAT = "mlworkloads.model"
MODEL_VERSION = 1
#: The model families and the file that holds each one's model (`model.json` says which).
NETWORK, XGBOOST = "network", "xgboost"
MODEL_FILES = {NETWORK: MODEL_FILE, XGBOOST: BOOSTER_FILE}
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, PREPROCESSOR_FILE)
#: Files a model directory may also hold (written by the trainer beside the model).
OPTIONAL_FILES = ("metrics.json",)


def export(
    output_uri: str,
    state_dict: dict[str, torch.Tensor],
    preprocessor: Preprocessor,
    config: dict[str, Any],
) -> None:
    """Writes the network's model directory; `model.json` is written last and marks it complete."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    write_model_dir(output_uri, NETWORK, buffer.getvalue(), preprocessor, config)


def write_model_dir(
    output_uri: str, family: str, model: bytes, preprocessor: Preprocessor, config: dict[str, Any]
) -> None:
    """Writes a model directory of `family`; `model.json` is written last and marks it complete."""
    fs, root = filesystem(output_uri)
    fs.makedirs(root, exist_ok=True)
    with atomic_open(output_uri.rstrip("/") + "/" + MODEL_FILES[family]) as f:
        f.write(model)
    with atomic_open(output_uri.rstrip("/") + "/" + PREPROCESSOR_FILE) as f:
        f.write(preprocessor.to_json().encode())
    document = {"format": MODEL_FORMAT, "version": MODEL_VERSION, **config, "family": family}
    with atomic_open(output_uri.rstrip("/") + "/" + CONFIG_FILE) as f:
        f.write(json.dumps(document, indent=2, sort_keys=True).encode())


_BINARY_SIGNS = np.array([-1.0, 1.0], dtype=np.float32)


def scores_from_logits(task: str, logits: np.ndarray, target_scale: dict[str, float] | None = None) -> np.ndarray:
    """The network's float32 logits (n, outputs) as probabilities (n, classes), or values (n,)."""
    if task == "binary":
        # [sigmoid(-x), sigmoid(x)]: the negative class's probability without 1 - p's rounding.
        return special.expit(logits * _BINARY_SIGNS)  # (n, 1) * (2,) -> (n, 2)
    if task == "multiclass":
        return special.softmax(logits, axis=1)
    scale = target_scale or {"mean": 0.0, "std": 1.0}
    return logits[:, 0] * np.float32(scale["std"]) + np.float32(scale["mean"])


#: (numeric (n, width) float32, categorical (n, columns) int64) -> probabilities (n, classes) or values (n,)
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass
class LoadedModel:
    """A model of either family, ready to score raw feature columns."""

    scorer: Scorer
    preprocessor: Preprocessor
    config: dict[str, Any]

    @property
    def task(self) -> str:
        return self.preprocessor.task

    @property
    def family(self) -> str:
        return self.config.get("family", NETWORK)

    def scores(self, features) -> np.ndarray:
        """Probabilities (n, classes) for classification; values (n,) for regression."""
        return self.scorer(features.numeric, features.categorical)

    def predict_columns(self, columns: Columns) -> np.ndarray:
        """Scores raw columns through the same preprocessor code as training."""
        return self.scores(self.preprocessor.transform(columns))


def predicted_class_shares(task: str, scores: np.ndarray, classes: list | None) -> dict[str, float] | None:
    """Each class's share of a split's predictions (argmax), keyed by the class as text; None for
    regression. The predictor exports it as the baseline of its live predicted-class mix."""
    if task == "regression" or not classes:
        return None
    counts = np.bincount(np.asarray(scores).argmax(axis=1), minlength=len(classes))
    return {str(c): float(n) / max(1, len(scores)) for c, n in zip(classes, counts.tolist(), strict=True)}


def load(model_dir: str, allow_extra: bool = False) -> LoadedModel:
    """Loads and cross-checks a model directory of either family.

    Raises:
        ModelDirError: a file is missing (or, unless `allow_extra`, unexpected), the model's
            feature spec disagrees with the preprocessor, or the model file cannot be loaded.
    """
    fs, root = filesystem(model_dir)
    if not fs.isdir(root):
        raise ModelDirError(f"model directory {model_dir!r} does not exist.")
    present = {os.path.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}

    def read(name: str) -> bytes:
        return fs.cat_file(root.rstrip("/") + "/" + name)

    config = _read_config(model_dir, present, read)
    family = config.get("family", NETWORK)
    if family not in MODEL_FILES:
        raise ModelDirError(
            f"{CONFIG_FILE} in {model_dir!r} names model family {family!r}; this mlworkloads reads "
            f"{sorted(MODEL_FILES)}: upgrade mlworkloads."
        )
    required = (MODEL_FILES[family], CONFIG_FILE, PREPROCESSOR_FILE)
    missing = [f for f in required if f not in present]
    if missing:
        raise ModelDirError(f"model directory {model_dir!r} lacks {missing}; it holds {sorted(present)}.")
    extra = sorted(present - set(required) - set(OPTIONAL_FILES))
    if extra and not allow_extra:
        raise ModelDirError(
            f"model directory {model_dir!r} holds unexpected files {extra}: a {family} model directory holds "
            f"{list(required)} (and optionally {list(OPTIONAL_FILES)}); is this the right directory?"
        )
    preprocessor = Preprocessor.from_json(read(PREPROCESSOR_FILE).decode(), source=f"{model_dir}/{PREPROCESSOR_FILE}")
    if config.get("feature_spec") != feature_spec(preprocessor):
        raise ModelDirError(
            f"{PREPROCESSOR_FILE} in {model_dir!r} does not match the model: the model expects "
            f"{config.get('feature_spec')}, the preprocessor gives {feature_spec(preprocessor)}."
        )
    payload = read(MODEL_FILES[family])
    try:
        scorer = _network_scorer(payload, config) if family == NETWORK else _booster_scorer(payload, config)
    except Exception as err:  # noqa: BLE001 - torch and XGBoost raise many types for a bad file
        raise ModelDirError(f"{MODEL_FILES[family]} in {model_dir!r} cannot be loaded: {err}") from err
    return LoadedModel(scorer=scorer, preprocessor=preprocessor, config=config)


def _read_config(model_dir: str, present: set[str], read: Callable[[str], bytes]) -> dict[str, Any]:
    if CONFIG_FILE not in present:
        raise ModelDirError(f"model directory {model_dir!r} lacks {[CONFIG_FILE]}; it holds {sorted(present)}.")
    try:
        config = json.loads(read(CONFIG_FILE))
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{CONFIG_FILE} in {model_dir!r} is not valid JSON: {err}") from err
    if (
        not isinstance(config, dict)
        or config.get("format") != MODEL_FORMAT
        or not isinstance(config.get("version"), int)
    ):
        raise ModelDirError(f"{CONFIG_FILE} in {model_dir!r} is not an mlworkloads model config.")
    if config["version"] > MODEL_VERSION:
        raise ModelDirError(
            f"{CONFIG_FILE} in {model_dir!r} is version {config['version']}, newer than this "
            f"mlworkloads reads ({MODEL_VERSION}): upgrade mlworkloads."
        )
    return config


def _network_scorer(payload: bytes, config: dict[str, Any]) -> Scorer:
    module = build_model(config["feature_spec"], config["architecture"])
    module.load_state_dict(torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True))
    module.eval()
    forward: Forward = forward_function(module)
    task, target_scale = config["feature_spec"]["task"], config.get("target_scale")
    return lambda numeric, categorical: scores_from_logits(task, forward(numeric, categorical), target_scale)


def _booster_scorer(payload: bytes, config: dict[str, Any]) -> Scorer:
    from mlworkloads.training.boosting_model import BoosterScorer

    return BoosterScorer.from_bytes(payload, config)
