# The CPU worker image: dfv-worker and dfv-trainer (Debian's LibTorch 1.13 with
# OpenBLAS) on debian:bookworm-slim, with Fashion-MNIST at /usr/share/datasets.
#
#   docker build -f docker/worker.Dockerfile -t dfv/worker .
#
# The build stage is the same, line for line, as docker/coordinator.Dockerfile's
# (tests/deploy/docker_test.sh checks it), so building both images compiles once.

# ---- build stage (keep identical to coordinator.Dockerfile) ----
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/packages/build.txt /tmp/build.txt
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends $(sed 's/#.*//' /tmp/build.txt) >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN --mount=type=cache,target=/root/.cache/ccache /src/docker/build.sh
# ---- end of build stage ----

FROM debian:bookworm-slim
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="dfv-worker" \
      org.opencontainers.image.description="dfv CPU worker daemon: trains what the dfv coordinator assigns, one dfv-trainer process per assignment" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
COPY --from=build /out/packages/dfv-worker.txt /out/packages/dfv-trainer.txt /tmp/
COPY scripts/packages/data.txt /tmp/data.txt
RUN apt-get update -qq \
 && { cat /tmp/dfv-worker.txt /tmp/dfv-trainer.txt; sed 's/#.*//' /tmp/data.txt; } | tr -s ' ' '\n' | sed '/^$/d' | sort -u \
    | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y -qq --no-install-recommends >/dev/null \
 && rm -rf /var/lib/apt/lists/* /tmp/*.txt \
 && groupadd --system --gid 10001 dfv \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dfv --shell /usr/sbin/nologin dfv \
 && install -d -o dfv -g dfv /var/lib/dfv /var/lib/dfv/work /var/lib/dfv/data
COPY --from=build /out/bin/dfv-worker /out/bin/dfv-trainer /usr/local/bin/
USER dfv
WORKDIR /var/lib/dfv
# 7080: the gRPC health service (and rank 0's address); 7081: Prometheus
# /metrics. The trainers' Gloo connections take ports the kernel picks.
EXPOSE 7080 7081
ENV DFV_HEALTH_ADDRESS=127.0.0.1:7080
HEALTHCHECK --interval=5s --timeout=6s --start-period=10s --retries=3 CMD ["dfv-worker", "health", "--timeout", "5"]
ENTRYPOINT ["dfv-worker"]
CMD ["--coordinator", "coordinator:7070", "--listen", "0.0.0.0:7080", "--work-dir", "/var/lib/dfv/work", \
     "--data-plane-interface", "eth0", \
     "--tls-cert", "/run/secrets/worker.pem", "--tls-key", "/run/secrets/worker.key", "--tls-ca", "/run/secrets/ca.pem"]
