# syntax=docker/dockerfile:1
# Build stage: wheels of correlator and its dependencies (compilers stay out of the runtime image).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY correlator ./correlator
COPY collectors ./collectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: non-root, state in a volume, health checked through the daemon's own endpoint.
FROM python:3.11-slim-bookworm
# Fixed ids, so Kubernetes' runAsUser/fsGroup (deploy/kubernetes) match the image.
RUN groupadd --system --gid 10001 correlator \
    && useradd --system --uid 10001 --gid correlator --home-dir /var/lib/correlator --create-home correlator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY rules /etc/correlator/rules
COPY deploy/correlator.yaml /etc/correlator/correlator.yaml
COPY deploy/services.yaml /etc/correlator/services.yaml
USER correlator
# The rule parse cache (docs/rules.md) in /tmp, which the Kubernetes manifests mount writable under a
# read-only root: a container restarted in the same pod skips its rules' YAML.
ENV CORRELATOR_CACHE_DIR=/tmp/correlator/rules
WORKDIR /var/lib/correlator
VOLUME ["/var/lib/correlator"]
# Only the HTTP API: the image's configuration enables webhook ingest alone (SNMP traps: the compose
# configuration or docs/operations.md). Tokens are read from /run/secrets (docs/operations.md).
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["correlator"]
CMD ["run", "--config", "/etc/correlator/correlator.yaml"]
