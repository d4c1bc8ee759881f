# syntax=docker/dockerfile:1
# The webhook-gateway image the Helm chart runs (helm/webhook-gateway).
#
#   docker build -t webhook-gateway:0.1.0 .
#   docker run --rm -p 8000:8000 -v "$PWD/config:/etc/gateway/config:ro" webhook-gateway:0.1.0
#
# Two stages: `build` installs the project with every dependency pinned by constraints.txt
# into a virtualenv; `runtime` copies only that virtualenv onto a fresh slim base, so no pip
# cache, build backend or source tree reaches the final image. Pin the base by digest in
# release builds: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY gateway ./gateway
COPY routing ./routing
# Every dependency has a wheel for this platform, so no compiler is needed even here.
# pip compiles the installed modules to .pyc, so the read-only runtime never writes any.
# The `otel` extra (OpenTelemetry API, SDK, OTLP/HTTP exporter) is always installed: tracing
# stays off unless the config's `tracing:` section turns it on, and then needs no rebuild.
# The import proves the exporter tracing.enabled loads is really there.
RUN pip install -c constraints.txt ".[otel]" \
 && pip check \
 && gateway --help > /dev/null \
 && python -c "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter" \
 && pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS runtime
# tini as PID 1 forwards SIGTERM to the gateway (which drains) and reaps zombies; without it
# Python as PID 1 would ignore a SIGTERM it installed no handler for.
# pip, setuptools and wheel of the base image go too: nothing installs at run time.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel
# The UID/GID the chart's securityContext expects (runAsUser/runAsGroup 10001).
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gateway
COPY --from=build /opt/gateway /opt/gateway
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    GATEWAY_CONFIG=/etc/gateway/config/gateway.yaml
LABEL org.opencontainers.image.title="webhook-gateway" \
      org.opencontainers.image.description="Verify, normalize and route payment-provider webhooks to Kafka and re-signed webhooks" \
      org.opencontainers.image.licenses="Apache-2.0"
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (see the chart).
ENTRYPOINT ["tini", "--", "gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
