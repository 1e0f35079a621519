# llm-gateway container image.
#
#   make image           docker build -t llm-gateway:dev .                 (python:3.12-slim)
#   make image-offline   the same Dockerfile on a debootstrap Debian base   (no registry needed)
#
# Both stages start FROM the same BASE_IMAGE so the venv's `python` symlink (to
# /usr/local/bin/python3 on python:*-slim, /usr/bin/python3 on Debian) resolves at runtime.
ARG BASE_IMAGE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

ARG UV_VERSION=0.13.9
# TLS-intercepting egress proxies: pip and uv verify PyPI with the image's system bundle (the
# offline base carries the build host's). uv reads SSL_CERT_FILE; pip reads PIP_CERT.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never

# uv lives in its own throwaway venv: it is a build tool and never reaches the runtime stage.
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}" \
 && python3 -m venv --without-pip /opt/venv

WORKDIR /src

# Dependencies first, in a layer keyed only on the lock: a code change reuses it.
# Hashes stay in the exported requirements, so every wheel is verified against uv.lock.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file /tmp/requirements.txt --quiet \
 && /opt/uv/bin/uv pip install --python /opt/venv/bin/python --require-hashes \
        --no-deps -r /tmp/requirements.txt

# Then the package itself: a regular (non-editable) wheel install, its dependencies already met.
COPY README.md ./
COPY service/ service/
RUN /opt/uv/bin/uv pip install --python /opt/venv/bin/python --no-deps . \
 && /opt/venv/bin/llm-gateway --help >/dev/null

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="llm-gateway" \
      org.opencontainers.image.description="A Kubernetes-native LLM gateway in front of a LiteLLM proxy: auth, limits, guards, caching, tracing, resilience." \
      org.opencontainers.image.source="https://github.com/llm-gateway/llm-gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid the chart's securityContext names (runAsUser/runAsGroup 10001). Its home does
# not exist: with a read-only root filesystem only /tmp and /data are writable.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
 && mkdir -p /data /app \
 && chown 10001:10001 /data \
 && chmod 0750 /data

COPY --from=builder /opt/venv /opt/venv

# Bytecode is compiled at build time; writing it at runtime would fail on a read-only root.
# gunicorn's heartbeat files go to /dev/shm, prometheus' multiprocess dir to /tmp, Qdrant's local
# store and the trace journal under DATA_DIR.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app
VOLUME ["/data"]
EXPOSE 8000
USER 10001:10001

# For plain `docker run`; Kubernetes ignores it and uses the chart's probes. No curl needed.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8000'), timeout=2)"]

# Exec form: `llm-gateway serve` execs gunicorn, so gunicorn is PID 1 and receives SIGTERM.
ENTRYPOINT ["llm-gateway"]
CMD ["serve"]
