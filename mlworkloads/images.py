"""Every container image the library uses, named once and tagged with the package version.

Components, the trainer and the predictor each run in their own image; all are built
from `docker/` with this package installed. Override the registry with the
`MLWORKLOADS_IMAGE_REGISTRY` environment variable *at compile time* to use a mirror.
"""

import os

from mlworkloads._version import __version__

REGISTRY = os.environ.get("MLWORKLOADS_IMAGE_REGISTRY", "ghcr.io/mlworkloads")

#: Base image of every lightweight component (CPU torch, kfp, kserve clients).
COMPONENT_IMAGE = f"{REGISTRY}/mlworkloads-python:{__version__}"
#: Trainer image run by the PyTorchJob replicas (CUDA build of torch, NCCL).
TRAINER_IMAGE = f"{REGISTRY}/mlworkloads-trainer:{__version__}"
#: KServe predictor image (`python -m mlworkloads.serving`).
PREDICTOR_IMAGE = f"{REGISTRY}/mlworkloads-predictor:{__version__}"

ALL_IMAGES = {
    "component": COMPONENT_IMAGE,
    "trainer": TRAINER_IMAGE,
    "predictor": PREDICTOR_IMAGE,
}

#: The Dockerfile that builds each image, relative to the repo root.
DOCKERFILES = {
    COMPONENT_IMAGE: "docker/component.Dockerfile",
    TRAINER_IMAGE: "docker/trainer.Dockerfile",
    PREDICTOR_IMAGE: "docker/predictor.Dockerfile",
}
