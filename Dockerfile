# syntax=docker/dockerfile:1
# image-factory: the GitOps reconciler for container-image builds.
#
#   docker build -t image-factory:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v image-factory-work:/var/lib/image-factory \
#     -e IMAGE_FACTORY_WEBHOOK_SECRET_FILE=/run/secrets/webhook -p 8080:8080 \
#     image-factory:0.1.0 run --repo https://git.example.com/platform/gitops.git --listen :8080
#
# The root filesystem can be read-only: the only places written at run time are the work
# directory /var/lib/image-factory (the Git clone and caches; also $HOME) and /tmp. In
# Kubernetes both are emptyDir volumes and the container sets readOnlyRootFilesystem: true
# (deploy/05-deployment.yaml).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# -- build: a virtual environment with the dependencies and the project -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first, so that a change to the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p reconciler && touch reconciler/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall -y image-factory-reconciler
COPY reconciler/ reconciler/
COPY pipeline-templates/ pipeline-templates/
COPY schemas/ schemas/
# Editable install at /app: the package finds pipeline-templates/ beside it, as in a checkout,
# and the console script `image-factory` lands in /opt/venv/bin.
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q /app/reconciler /opt/venv/lib \
    && image-factory --help > /dev/null

# -- runtime: slim Python, git and ssh, a non-root user, nothing else --------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="image-factory" \
      org.opencontainers.image.description="GitOps reconciler for container-image builds" \
      org.opencontainers.image.licenses="Apache-2.0"
# git and openssh-client: fetch and push the GitOps repository over https or ssh.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 image-factory \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/image-factory --no-create-home \
       --shell /usr/sbin/nologin image-factory \
    && mkdir -p /var/lib/image-factory \
    && chown 10001:10001 /var/lib/image-factory \
    && chmod 0700 /var/lib/image-factory
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/image-factory \
    IMAGE_FACTORY_WORKDIR=/var/lib/image-factory
WORKDIR /var/lib/image-factory
VOLUME ["/var/lib/image-factory"]
USER 10001:10001
EXPOSE 8080
# Alive = /healthz answers 200 (only meaningful for `run`, which serves it on :8080 by the CMD below).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["image-factory"]
CMD ["run", "--listen", ":8080"]
