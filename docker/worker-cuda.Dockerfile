# The GPU worker image: dfv-worker and dfv-trainer built against a CUDA build
# of LibTorch, with NCCL (the CUDA path of the build: worker/dist/nccl.cmake
# finds NCCL and the CUDA runtime and builds the NCCL communicator), on an
# nvidia/cuda runtime image.
#
#   docker build -f docker/worker-cuda.Dockerfile -t dfv/worker-cuda .
#
# Not built on dfv's development machines: they reach no image registry (no
# nvidia/cuda base) and Debian has no CUDA LibTorch. It runs the same
# docker/build.sh, so it builds the same CMake targets as the CPU images, and
# `docker-compose config` checks the GPU profile that uses it.
#
# Ubuntu 24.04 is the nvidia/cuda flavour whose gRPC (1.51), Protobuf (3.21)
# and Abseil (20220623) are the versions of Debian 12 that dfv is built with.

# ---- build stage ----
FROM nvidia/cuda:12.6.3-cudnn-devel-ubuntu24.04 AS build
ENV DEBIAN_FRONTEND=noninteractive
# A CUDA build of LibTorch (2.x, C++11 ABI) from pytorch.org, matching the
# CUDA version of the base image (12.6).
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu126/libtorch-cxx11-abi-shared-with-deps-2.6.0%2Bcu126.zip
COPY scripts/packages/build.txt /tmp/build.txt
# Debian's CPU LibTorch and its Gloo are replaced by the zip (which has both).
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends curl unzip ca-certificates \
      $(sed 's/#.*//' /tmp/build.txt | tr -s ' ' '\n' | grep -vx -e libtorch-dev -e libgloo-dev) >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSL -o /tmp/libtorch.zip "$LIBTORCH_URL" \
 && unzip -q /tmp/libtorch.zip -d /opt && rm /tmp/libtorch.zip
COPY . /src
RUN --mount=type=cache,target=/root/.cache/ccache \
    DFV_CMAKE_ARGS="-DCMAKE_PREFIX_PATH=/opt/libtorch -DDFV_WITH_NCCL=ON" DFV_BUNDLE_PREFIX=/opt/libtorch \
    /src/docker/build.sh
# ---- end of build stage ----

FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="dfv-worker-cuda" \
      org.opencontainers.image.description="dfv GPU worker daemon: CUDA LibTorch and NCCL; trains what the dfv coordinator assigns" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04"
COPY --from=build /out/packages/dfv-worker.txt /out/packages/dfv-trainer.txt /tmp/
COPY --from=build /out/lib/ /usr/local/lib/dfv/
RUN apt-get update -qq \
 && cat /tmp/dfv-worker.txt /tmp/dfv-trainer.txt | sort -u \
    | DEBIAN_FRONTEND=noninteractive xargs apt-get install -y -qq --no-install-recommends >/dev/null \
 && rm -rf /var/lib/apt/lists/* /tmp/*.txt \
 && echo /usr/local/lib/dfv >/etc/ld.so.conf.d/dfv.conf && ldconfig \
 && groupadd --system --gid 10001 dfv \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dfv --shell /usr/sbin/nologin dfv \
 && install -d -o dfv -g dfv /var/lib/dfv /var/lib/dfv/work /var/lib/dfv/data
COPY --from=build /out/bin/dfv-worker /out/bin/dfv-trainer /usr/local/bin/
USER dfv
WORKDIR /var/lib/dfv
EXPOSE 7080 7081
ENV DFV_HEALTH_ADDRESS=127.0.0.1:7080 NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
HEALTHCHECK --interval=5s --timeout=6s --start-period=10s --retries=3 CMD ["dfv-worker", "health", "--timeout", "5"]
ENTRYPOINT ["dfv-worker"]
CMD ["--coordinator", "coordinator:7070", "--listen", "0.0.0.0:7080", "--device", "cuda", "--work-dir", "/var/lib/dfv/work", \
     "--data-plane-interface", "eth0", \
     "--tls-cert", "/run/secrets/worker.pem", "--tls-key", "/run/secrets/worker.key", "--tls-ca", "/run/secrets/ca.pem"]
