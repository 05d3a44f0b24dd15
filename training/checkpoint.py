"""Resumable checkpoints, written atomically and verified on read.

A checkpoint is `checkpoint-<epoch>.pt` (the network's torch state; the boosted trees write
`checkpoint-<round>.ubj`, the booster itself) plus a small `latest.json` pointer naming it with its
size and SHA-256. The pointer is written last, so a crash mid-write leaves the previous
checkpoint current, and a truncated or corrupted file is refused instead of being resumed from.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from typing import Any

import torch

from mlworkloads.data.storage import atomic_open, filesystem
from mlworkloads.training.errors import CheckpointError

log = logging.getLogger(__name__)

POINTER = "latest.json"
KEEP = 2


def _join(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def save(directory: str, epoch: int, state: dict[str, Any]) -> str:
    """Writes `state` (a torch state) as the checkpoint of `epoch`; returns its URI."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return save_payload(directory, epoch, buffer.getvalue(), ".pt")


def save_payload(directory: str, epoch: int, payload: bytes, suffix: str, unit: str = "epoch") -> str:
    """Writes `payload` (any serialised state) as the checkpoint of `epoch` (0-based, counted in
    `unit`s: epochs, or a booster's rounds); returns its URI."""
    name = f"checkpoint-{epoch:05d}{suffix}"
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    with atomic_open(_join(directory, name)) as f:
        f.write(payload)
    pointer = {
        "file": name,
        "epoch": epoch,
        "unit": unit,
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    with atomic_open(_join(directory, POINTER)) as f:
        f.write(json.dumps(pointer).encode())
    _prune(fs, root, keep=name)
    return _join(directory, name)


def _prune(fs, root: str, keep: str) -> None:
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    old = [n for n in names if n.startswith("checkpoint-") and n != keep]
    for name in old[: max(0, len(old) - (KEEP - 1))]:
        fs.rm(_join(root, name))


def latest_pointer(directory: str) -> dict[str, Any] | None:
    """The pointer of the latest complete checkpoint, or None when there is none yet."""
    fs, root = filesystem(directory)
    path = _join(root, POINTER)
    if not fs.exists(path):
        return None
    try:
        return json.loads(fs.cat_file(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{_join(directory, POINTER)} is corrupted: {err}") from err


def load_latest(directory: str) -> dict[str, Any] | None:
    """Loads the latest checkpoint (weights only), verifying its size and checksum."""
    latest = load_latest_payload(directory)
    if latest is None:
        return None
    return torch.load(io.BytesIO(latest[1]), map_location="cpu", weights_only=True)


def load_latest_payload(directory: str) -> tuple[dict[str, Any], bytes] | None:
    """The latest checkpoint's pointer and bytes, verified against its size and checksum."""
    pointer = latest_pointer(directory)
    if pointer is None:
        return None
    uri = _join(directory, pointer["file"])
    fs, path = filesystem(uri)
    try:
        payload = fs.cat_file(path)
    except FileNotFoundError as err:
        raise CheckpointError(f"{uri} named by {POINTER} is missing") from err
    if len(payload) != pointer["bytes"] or hashlib.sha256(payload).hexdigest() != pointer["sha256"]:
        raise CheckpointError(
            f"{uri} is truncated or corrupted: {len(payload)} bytes, expected {pointer['bytes']} "
            "with the recorded SHA-256. Delete it to start over, or restore it."
        )
    log.info("resuming from %s (epoch %d)", uri, pointer["epoch"])
    return pointer, payload
