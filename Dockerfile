# syntax=docker/dockerfile:1
# The Pavilion API image: `docker build -t pavilion:0.1.0 .` (the last stage, the default), and
# the reverse proxy's: `docker build --target proxy -t pavilion-proxy:0.1.0 .`.
# docker-compose.yml builds both.
#
# The base is pinned by tag. To pin it by digest as well, resolve the tag on a machine that can
# reach the registry and append the digest, keeping the tag for people to read:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm   # prints "Digest: sha256:..."
#   ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<that digest>
# pyproject.toml allows Python 3.11 only (>=3.11,<3.12); keep the base on 3.11.x.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# Then the project itself. .dockerignore lets through only what the image needs.
COPY . .
# web/dist comes from the web client's build and may be absent (as may assets/, which git does
# not keep while empty): the runtime stage copies both from here, so make sure they exist.
RUN pip install --no-deps . && mkdir -p web/dist assets

# The reverse proxy (docs/operations.md, "The reverse proxy"): Debian bookworm's nginx 1.22, the
# very package the topology test runs (tests/topology/), with the built web client. The base is
# the app's pinned image (python:*-slim-bookworm is debian:bookworm-slim plus Python, which the
# healthcheck uses): one base to pin and patch. The configuration (deploy/nginx.conf and the
# compose companions in deploy/compose/) is mounted by docker-compose.yml, not built in.
FROM ${PYTHON_IMAGE} AS proxy
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/web/dist /srv/proxy/web
# Without the web client the proxy has nothing to serve: refuse to build rather than ship 404s.
RUN test -f /srv/proxy/web/index.html \
    || { echo "web/dist/index.html is missing: run 'make web' before building" >&2; exit 1; } \
 && mkdir /srv/proxy/run \
 && chown www-data:www-data /srv/proxy/run
# Unprivileged from the start: it listens on 8080 and writes only under run/.
USER www-data
WORKDIR /srv/proxy
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=4)"]
CMD ["nginx", "-p", "/srv/proxy/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"]

# The API image (the default target).
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Fonts for booth signs (scenes/fonts.py): Noto Sans CJK for Latin, Cyrillic and CJK names,
# DejaVu Sans for the Latin and Cyrillic letters Noto Sans CJK lacks. About 95 MB installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric id, so that orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 pavilion \
 && useradd --system --uid 10001 --gid pavilion --home-dir /app --shell /usr/sbin/nologin pavilion
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Settings defaults are relative to the working directory: web/dist, assets, var.
COPY --from=build /src/web/dist ./web/dist
COPY --from=build /src/assets ./assets
RUN mkdir -p var && chown pavilion:pavilion var
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["python", "-m", "server", "serve", "--host", "0.0.0.0"]
