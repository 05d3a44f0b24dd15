"""Every container image the library uses, named once and tagged with the package version.

Components, the trainer and the predictor each run in their own image; all are built from
`docker/` with this package installed. The names are fixed *at compile time*: components
take the trainer and predictor images as input defaults, so a registry override set when
compiling (`mlworkloads compile --registry ...`, or `MLWORKLOADS_IMAGE_REGISTRY`) reaches the
step pods, the training replicas and the predictor alike. Nothing picks an image in the pod.
"""

import os

from mlworkloads._version import __version__

DEFAULT_REGISTRY = "ghcr.io/mlworkloads"
REGISTRY_ENV = "MLWORKLOADS_IMAGE_REGISTRY"
#: The Dockerfile of each image, relative to the repo root.
DOCKERFILES = {
    "component": "docker/component.Dockerfile",
    "trainer": "docker/trainer.Dockerfile",
    "predictor": "docker/predictor.Dockerfile",
}


def image_names(registry: str = "", tag: str = __version__) -> dict[str, str]:
    """{"component": ..., "trainer": ..., "predictor": ...} under `registry` (default: the env, then ours)."""
    registry = (registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY).rstrip("/")
    return {kind: f"{registry}/mlworkloads-{'python' if kind == 'component' else kind}:{tag}" for kind in DOCKERFILES}


ALL_IMAGES = image_names()
REGISTRY = ALL_IMAGES["component"].rsplit("/", 1)[0]
#: Base image of every lightweight component (CPU torch, kfp, kserve clients).
COMPONENT_IMAGE = ALL_IMAGES["component"]
#: Trainer image run by the PyTorchJob replicas (CUDA build of torch, NCCL).
TRAINER_IMAGE = ALL_IMAGES["trainer"]
#: KServe predictor image (`python -m mlworkloads.serving`).
PREDICTOR_IMAGE = ALL_IMAGES["predictor"]
