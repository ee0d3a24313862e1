# syntax=docker/dockerfile:1
# The insights app image: `flagstage-app`, installed from this repository with the `app` extra
# exactly as CI installs it, on a slim Python without compilers or pip.
# Build from the repository root: docker build -f Dockerfile.app -t flagstage-app .
# Pin the base by digest too when you publish: --build-arg PYTHON_IMAGE=python:...@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# psycopg comes as its binary wheel: no compiler and no libpq headers are needed.
RUN python -m venv /opt/flagstage
COPY pyproject.toml README.md ./
COPY src ./src
COPY operator ./operator
COPY app ./app
RUN /opt/flagstage/bin/pip install ".[app]" \
    && /opt/flagstage/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# Without DATABASE_URL and QDRANT_URL the app keeps SQLite and Qdrant's local files in its
# data directory; mount a volume there (the chart mounts an emptyDir) or point them elsewhere.
ENV PATH=/opt/flagstage/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/flagstage \
    DATABASE_URL=sqlite:////var/lib/flagstage/flagstage.db \
    FEATURES_CONFIG_DIR=/etc/flagstage/features
RUN groupadd --system --gid 10001 flagstage \
    && useradd --system --uid 10001 --gid flagstage --no-create-home \
       --home-dir /var/lib/flagstage --shell /usr/sbin/nologin flagstage \
    && install --directory --owner=10001 --group=10001 /var/lib/flagstage
COPY --from=build /opt/flagstage /opt/flagstage
WORKDIR /var/lib/flagstage
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["flagstage-app"]
CMD ["serve", "--host=0.0.0.0", "--port=8000"]
