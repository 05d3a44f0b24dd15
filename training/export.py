"""The exported model directory: what the trainer writes and the evaluator and predictor load.

model.pt            state_dict only, loaded with torch.load(weights_only=True)
model.json          architecture, task, feature spec, versions and final metrics
preprocessor.json   the preprocessor the model was trained with
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
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
CONFIG_FILE = "model.json"
PREPROCESSOR_FILE = "preprocessor.json"
MODEL_FORMAT = "mlworkloads.model"
MODEL_VERSION = 1
REQUIRED_FILES = (MODEL_FILE, CONFIG_FILE, PREPROCESSOR_FILE)
#: Files a model directory may also hold (written by the trainer beside the model).
OPTIONAL_FILES = ("metrics.json",)


def export(
    output_uri: str,
    state_dict: dict[str, torch.Tensor],
    preprocessor: Preprocessor,
    config: dict[str, Any],
) -> None:
    """Writes the model directory; `model.json` is written last and marks it complete."""
    fs, root = filesystem(output_uri)
    fs.makedirs(root, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with atomic_open(output_uri.rstrip("/") + "/" + MODEL_FILE) as f:
        f.write(buffer.getvalue())
    with atomic_open(output_uri.rstrip("/") + "/" + PREPROCESSOR_FILE) as f:
        f.write(preprocessor.to_json().encode())
    document = {"format": MODEL_FORMAT, "version": MODEL_VERSION, **config}
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


@dataclasses.dataclass
class LoadedModel:
    """A model ready to score raw feature columns."""

    module: torch.nn.Module
    preprocessor: Preprocessor
    config: dict[str, Any]
    forward: Forward = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.module.eval()
        self.forward = forward_function(self.module)

    @property
    def task(self) -> str:
        return self.preprocessor.task

    def scores(self, features) -> np.ndarray:
        """Probabilities (n, classes) for classification; values (n,) for regression."""
        logits = self.forward(features.numeric, features.categorical)
        return scores_from_logits(self.task, logits, self.config.get("target_scale"))

    def predict_columns(self, columns: Columns) -> np.ndarray:
        """Scores raw columns through the same preprocessor code as training."""
        return self.scores(self.preprocessor.transform(columns))


def load(model_dir: str, allow_extra: bool = False) -> LoadedModel:
    """Loads and cross-checks a model directory.

    Raises:
        ModelDirError: a file is missing (or, unless `allow_extra`, unexpected), the model's
            feature spec disagrees with the preprocessor, or the weights do not fit.
    """
    fs, root = filesystem(model_dir)
    if not fs.isdir(root):
        raise ModelDirError(f"model directory {model_dir!r} does not exist.")
    present = {os.path.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}
    missing = [f for f in REQUIRED_FILES if f not in present]
    if missing:
        raise ModelDirError(f"model directory {model_dir!r} lacks {missing}; it holds {sorted(present)}.")
    extra = sorted(present - set(REQUIRED_FILES) - set(OPTIONAL_FILES))
    if extra and not allow_extra:
        raise ModelDirError(
            f"model directory {model_dir!r} holds unexpected files {extra}: a model directory holds "
            f"{list(REQUIRED_FILES)} (and optionally {list(OPTIONAL_FILES)}); is this the right directory?"
        )

    def read(name: str) -> bytes:
        return fs.cat_file(root.rstrip("/") + "/" + name)

    try:
        config = json.loads(read(CONFIG_FILE))
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{CONFIG_FILE} in {model_dir!r} is not valid JSON: {err}") from err
    if config.get("format") != MODEL_FORMAT or not isinstance(config.get("version"), int):
        raise ModelDirError(f"{CONFIG_FILE} in {model_dir!r} is not an mlworkloads model config.")
    if config["version"] > MODEL_VERSION:
        raise ModelDirError(
            f"{CONFIG_FILE} in {model_dir!r} is version {config['version']}, newer than this "
            f"mlworkloads reads ({MODEL_VERSION}): upgrade mlworkloads."
        )
    preprocessor = Preprocessor.from_json(read(PREPROCESSOR_FILE).decode(), source=f"{model_dir}/{PREPROCESSOR_FILE}")
    if config.get("feature_spec") != feature_spec(preprocessor):
        raise ModelDirError(
            f"{PREPROCESSOR_FILE} in {model_dir!r} does not match the model: the model expects "
            f"{config.get('feature_spec')}, the preprocessor gives {feature_spec(preprocessor)}."
        )
    module = build_model(config["feature_spec"], config["architecture"])
    try:
        state = torch.load(io.BytesIO(read(MODEL_FILE)), map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise ModelDirError(f"{MODEL_FILE} in {model_dir!r} cannot be loaded: {err}") from err
    return LoadedModel(module=module, preprocessor=preprocessor, config=config)
