# hotfixd and hotfixctl in one image: built in a Rust image, run from a
# slim Debian one as a non-root user.
#
#   docker build -t hotfixd .
#   docker run -v hotfixd-data:/var/lib/hotfixd \
#     -v /etc/hotfixd:/etc/hotfixd:ro -p 50051:50051 -p 50080:50080 hotfixd
#
# The daemon reads /etc/hotfixd/hotfixd.toml (deploy/hotfixd.example.toml)
# and listens on 0.0.0.0: give it [tls] (or --insecure-plaintext behind a
# mesh that encrypts), or it refuses to start. Probes: gRPC health on
# 50051 (Kubernetes' grpc probe, or `hotfixctl health`), /healthz and
# /readyz on 50080.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# protox compiles the protos: no protoc needed.
RUN cargo build --release --locked --bin hotfixd --bin hotfixctl

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/hotfixd \
      --shell /usr/sbin/nologin hotfixd \
 && install -d -o hotfixd -g hotfixd -m 0700 /var/lib/hotfixd
COPY --from=build /src/target/release/hotfixd /src/target/release/hotfixctl /usr/local/bin/
USER 10001:10001
ENV HOTFIXD_DATA_DIR=/var/lib/hotfixd \
    HOTFIXD_LISTEN=0.0.0.0:50051 \
    HOTFIXD_HTTP_LISTEN=0.0.0.0:50080 \
    HOTFIXD_LOG_FORMAT=json
VOLUME ["/var/lib/hotfixd"]
EXPOSE 50051 50080
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["hotfixctl", "--endpoint", "http://127.0.0.1:50051", "health"]
ENTRYPOINT ["hotfixd"]
CMD ["--config", "/etc/hotfixd/hotfixd.toml"]
