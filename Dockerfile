# syntax=docker/dockerfile:1.7
#
# intercom-mcp-gateway image: both binaries (`intercom-mcp-gateway`, `fake-intercom`) on
# distroless/cc — glibc and libgcc only, no shell, no package manager, uid 65532.
#
#   docker build -t intercom-mcp-gateway .                   # the production image (`runtime`)
#   docker build --target compose -t intercom-mcp-gateway:dev .   # + a `wget` for compose healthchecks
#
# Build arguments for the OCI labels: VERSION, REVISION (git sha), CREATED (RFC 3339), SOURCE.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# `.sqlx/` is committed, so `query!` macros type-check without a database (see README).
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_NET_RETRY=5
COPY . .
# The registry and target caches survive between builds (BuildKit), so a source edit rebuilds
# only our crate. Binaries are copied out because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/intercom-mcp-gateway target/release/fake-intercom /out/

# ---------------------------------------------------------------------------------------------
# Compose healthchecks need an HTTP client inside the container; Kubernetes probes do not.
# Only busybox's `wget` applet is copied (busybox picks the applet from argv[0]), and only into
# the `compose` target: the production image stays shell-less.
FROM debian:bookworm-slim AS healthcheck-tools
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static \
    && cp /bin/busybox /wget \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS base
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=""
ARG SOURCE=""
LABEL org.opencontainers.image.title="intercom-mcp-gateway" \
      org.opencontainers.image.description="Multi-tenant REST gateway in front of Intercom's remote MCP server" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/intercom-mcp-gateway /out/fake-intercom /usr/local/bin/
# distroless `nonroot`: numeric so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
WORKDIR /home/nonroot
ENV GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_METRICS_LISTEN=0.0.0.0:9090
# 8080: API, /healthz, /readyz, /openapi.json, /docs. 9090: /metrics.
EXPOSE 8080 9090
# The gateway drains in-flight calls on SIGTERM (GATEWAY_SHUTDOWN_TIMEOUT), so it must be PID 1
# itself: exec form, no shell wrapper.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/intercom-mcp-gateway"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
FROM base AS compose
COPY --from=healthcheck-tools /wget /usr/local/bin/wget

# ---------------------------------------------------------------------------------------------
# Last stage = the default target: the production image.
FROM base AS runtime
