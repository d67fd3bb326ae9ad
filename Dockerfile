# auditlake in a container: build with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
# librdkafka is built from source (bundled) against the system OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin auditlake

FROM debian:bookworm-slim
# librdkafka links the system OpenSSL (Kafka over TLS/SASL).
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/auditlake auditlake && mkdir -p /var/lib/auditlake && chown auditlake /var/lib/auditlake
COPY --from=build /src/target/release/auditlake /usr/local/bin/auditlake
COPY sample-logs /usr/share/auditlake/sample-logs
USER auditlake
WORKDIR /var/lib/auditlake
ENV AUDITLAKE_DATA_DIR=/var/lib/auditlake/data
ENTRYPOINT ["auditlake"]
CMD ["--help"]
