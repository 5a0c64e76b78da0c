# Prometheus from Debian's package, for the compose cluster: no registry
# image is needed, and promtool (its healthcheck) comes with it.
#
#   docker build -f docker/prometheus.Dockerfile -t dfv/prometheus .
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="dfv-prometheus" \
      org.opencontainers.image.description="Debian's Prometheus for a dfv cluster (configuration mounted from deploy/)" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
 && rm -rf /var/lib/apt/lists/*
USER prometheus
WORKDIR /var/lib/prometheus
EXPOSE 9090
VOLUME /var/lib/prometheus/metrics2
# An instant query through the HTTP API: answers only once the server is up.
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
  CMD ["promtool", "query", "instant", "http://127.0.0.1:9090", "vector(1)"]
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2", \
     "--web.listen-address=0.0.0.0:9090"]
