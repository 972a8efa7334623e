# syntax=docker/dockerfile:1
# Two images from one file: `api` (no ML stack) and `worker` (TensorFlow: the GPU build, or the
# CPU build with --build-arg WORKER_LOCK=worker-cpu). Dependencies come from the hash-locked
# requirements/<lock>.txt (scripts/lock) and are installed before the source is copied, so an
# edit of the code rebuilds only the last layers. `optarena` is the
# client's command (client/) with the server's `keys` added.

# The source both images copy, named once.
FROM scratch AS source
COPY core /src/core
COPY api /src/api
COPY worker /src/worker
COPY cli /src/cli
COPY client /src/client
COPY migrations /src/migrations
COPY alembic.ini pyproject.toml README.md /src/

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 1000 optarena
COPY requirements ./requirements

FROM base AS api
# API_LOCK=monitoring: the same image with Flower (compose's flower service).
ARG API_LOCK=base
RUN pip install --require-hashes -r "requirements/$API_LOCK.txt"
COPY --from=source /src ./
RUN pip install --no-deps ./client .
RUN mkdir -p /data/artifacts && chown optarena /data/artifacts
USER optarena
EXPOSE 8000
ENV OPTARENA_API_HOST=0.0.0.0 OPTARENA_ARTIFACTS_URL=/data/artifacts
CMD ["python", "-m", "api"]

FROM base AS worker
ARG WORKER_LOCK=worker-gpu
# The real Fashion-MNIST, offline (read from /usr/share/datasets/fashion-mnist).
RUN apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --require-hashes -r "requirements/$WORKER_LOCK.txt"
COPY --from=source /src ./
RUN pip install --no-deps ./client .
RUN mkdir -p /data/datasets /data/artifacts && chown optarena /data/datasets /data/artifacts
USER optarena
ENV OPTARENA_DATASET_CACHE_DIR=/data/datasets OPTARENA_ARTIFACTS_URL=/data/artifacts
CMD ["python", "-m", "worker"]
