# Trainer image run by the PyTorchJob replicas (mlworkloads.images.TRAINER_IMAGE).
# CUDA build of torch with NCCL: the base image ships torch 2.5.1 built for CUDA 12.4 and
# cuDNN 9; the trainer falls back to gloo on CPU-only nodes.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/mlworkloads
COPY pyproject.toml README.md constraints.txt ./
COPY mlworkloads ./mlworkloads
COPY components ./components
COPY pipelines ./pipelines
COPY training ./training
COPY serving ./serving
COPY data ./data

# The base image's CUDA torch satisfies the package's torch requirement; keep it.
RUN grep -v -E '^(torch|nvidia-|triton)' constraints.txt > /tmp/constraints.txt \
    && pip install -c /tmp/constraints.txt ".[s3,gcs]"

RUN useradd --create-home --uid 1000 trainer
USER 1000
ENTRYPOINT ["torchrun"]
CMD ["--help"]
