# Quiver's three binaries in one small image: quiver-coordinator, quiver-worker and the quiver
# CLI. Build from the repository root:
#
#     docker build -t quiver:latest .
#
# The image runs the coordinator by default; compose and Kubernetes choose the binary with
# their own command (see deploy/ and docs/deploy.md). Every flag also has a QUIVER_*
# environment variable, and every binary checks a configuration without starting:
#
#     docker run --rm quiver:latest quiver-worker --check-config --coordinator http://c:50050

# --- build: the release binaries -------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Caches keep the registry and the target directory between builds; the binaries are copied
# out of the cache mount into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p quiver-coordinator -p quiver-worker -p quiver-cli \
    && mkdir -p /out \
    && cp target/release/quiver-coordinator target/release/quiver-worker target/release/quiver /out/

# --- run: debian slim, an unprivileged user, tini as PID 1 (forwards SIGTERM for the drain) ---
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/quiver quiver \
    && mkdir -p /var/lib/quiver/state /var/lib/quiver/work \
    && chown -R quiver:quiver /var/lib/quiver
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/quiver
ENV QUIVER_STATE_DIR=/var/lib/quiver/state QUIVER_WORK_DIR=/var/lib/quiver/work RUST_LOG=info
# 50050: coordinator gRPC; 8080: coordinator dashboard, /metrics and /healthz;
# 7070: worker gRPC + Flight; 8081: worker /healthz and /readyz.
EXPOSE 50050 8080 7070 8081
ENTRYPOINT ["/usr/bin/tini", "--"]
# The default command: a coordinator on every interface. It refuses to start without a token
# (docker run -e QUIVER_TOKEN=... or -e QUIVER_TOKEN_FILE=/run/secrets/...).
CMD ["quiver-coordinator", "--bind", "0.0.0.0:50050", "--dashboard-bind", "0.0.0.0:8080"]
