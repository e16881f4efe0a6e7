# montage-agent for NVIDIA hosts: Ubuntu's ffmpeg has the NVENC encoders,
# which the agent proves with a test encode at start. Run with
# --gpus all (or the NVIDIA device plugin on Kubernetes).
# docker build -f deploy/docker/agent-nvidia.Dockerfile -t montage-agent-nvidia .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/stream-montages/montage/internal/version.Version=${VERSION}" -o /out/montage-agent ./agent

FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
ENV NVIDIA_DRIVER_CAPABILITIES=compute,video,utility
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /work montage-agent \
 && mkdir -p /work && chown montage-agent:montage-agent /work
COPY --from=build /out/montage-agent /usr/bin/montage-agent
USER 10001:10001
VOLUME /work
EXPOSE 9102
ENTRYPOINT ["/usr/bin/montage-agent", "run", "-data-dir=/work"]
