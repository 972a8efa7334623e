# syntax=docker/dockerfile:1
# Two images from one file: `api` (no ML stack) and `worker` (GPU TensorFlow; runs on CPU too).

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 1000 optarena
COPY pyproject.toml constraints.txt README.md ./
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY cli ./cli
COPY migrations ./migrations
COPY alembic.ini ./

FROM base AS api
RUN pip install -c constraints.txt .
USER optarena
EXPOSE 8000
ENV OPTARENA_API_HOST=0.0.0.0
CMD ["python", "-m", "api"]

FROM base AS worker
RUN pip install -c constraints.txt ".[worker,gpu]"
RUN mkdir -p /data/datasets /data/checkpoints && chown optarena /data/datasets /data/checkpoints
USER optarena
ENV OPTARENA_DATASET_CACHE_DIR=/data/datasets OPTARENA_CHECKPOINT_DIR=/data/checkpoints
CMD ["python", "-m", "worker"]
