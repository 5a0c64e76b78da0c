# The coordinator image: dfv-coordinator and dfvctl on debian:bookworm-slim.
#
#   docker build -f docker/coordinator.Dockerfile -t dfv/coordinator .
#
# The build stage is the same, line for line, as docker/worker.Dockerfile's
# (tests/deploy/docker_test.sh checks it), so building both images compiles once.
# It needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 on
# Debian's docker.io 20.10) for the ccache cache mount.

# ---- build stage (keep identical to worker.Dockerfile) ----
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
LABEL org.opencontainers.image.title="dfv-coordinator" \
      org.opencontainers.image.description="dfv coordinator: queues training jobs and places them on dfv worker daemons (gRPC), with dfvctl" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
COPY --from=build /out/packages/dfv-coordinator.txt /out/packages/dfvctl.txt /tmp/
RUN apt-get update -qq \
 && cat /tmp/dfv-coordinator.txt /tmp/dfvctl.txt | sort -u \
    | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y -qq --no-install-recommends >/dev/null \
 && rm -rf /var/lib/apt/lists/* /tmp/*.txt \
 && groupadd --system --gid 10001 dfv \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dfv --shell /usr/sbin/nologin dfv \
 && install -d -o dfv -g dfv /var/lib/dfv /var/lib/dfv/data /var/lib/dfv/prometheus
COPY --from=build /out/bin/dfv-coordinator /out/bin/dfvctl /usr/local/bin/
USER dfv
WORKDIR /var/lib/dfv
# 7070: gRPC (clients and workers); 7071: Prometheus /metrics.
EXPOSE 7070 7071
VOLUME /var/lib/dfv/data
# `dfv-coordinator health` asks the gRPC health service; with TLS, set
# DFV_TLS_CA to the CA file (the compose file does).
ENV DFV_HEALTH_ADDRESS=127.0.0.1:7070
HEALTHCHECK --interval=5s --timeout=6s --start-period=10s --retries=3 CMD ["dfv-coordinator", "health", "--timeout", "5"]
ENTRYPOINT ["dfv-coordinator"]
# TLS with client tokens, the files as docker-compose mounts its secrets.
CMD ["--data-dir", "/var/lib/dfv/data", "--listen", "0.0.0.0:7070", \
     "--tls-cert", "/run/secrets/coordinator.pem", "--tls-key", "/run/secrets/coordinator.key", \
     "--tls-ca", "/run/secrets/ca.pem", "--auth-file", "/run/secrets/auth.txt"]
