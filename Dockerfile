# syntax=docker/dockerfile:1
# Build: one static-ish release binary, with dependency builds cached between runs.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway \
    && cp target/release/gateway /gateway

# Run: a small non-root image with the one binary.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/event-bridge --create-home event-bridge
COPY --from=build /gateway /usr/local/bin/gateway
USER event-bridge
WORKDIR /var/lib/event-bridge
ENV APP_HOST=0.0.0.0 APP_PORT=8002 DATA_DIR=/var/lib/event-bridge/data LOG_FORMAT=json
EXPOSE 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["gateway", "healthcheck"]
ENTRYPOINT ["gateway"]
CMD ["serve"]
