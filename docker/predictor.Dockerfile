# KServe predictor image (mlworkloads.images.PREDICTOR_IMAGE): python -m mlworkloads.serving.
# KServe's storage initializer puts the model at /mnt/models, mounted read-only.
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
    && pip install -c constraints.txt .

RUN useradd --create-home --uid 1000 kserve
USER 1000
# The one-row forward pass is compiled by numba on first use (~1.6 s); compiled here, it is in
# the user's numba cache when a pod starts (training/compiled_forward.py).
RUN python -c "from mlworkloads.training.compiled_forward import _compiled; _compiled()"
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "mlworkloads.serving"]
CMD ["--model_dir", "/mnt/models", "--model_name", "model"]
