# montage-agent with Debian's ffmpeg (libx264/libx265/SVT-AV1; VAAPI and QSV
# when the host's /dev/dri is passed in).
# docker build -f deploy/docker/agent.Dockerfile -t montage-agent .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/stream-montages/montage/internal/version.Version=${VERSION}" -o /out/montage-agent ./agent

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core yt-dlp ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /work montage-agent \
 && mkdir -p /work && chown montage-agent:montage-agent /work
COPY --from=build /out/montage-agent /usr/bin/montage-agent
USER 10001:10001
VOLUME /work
EXPOSE 9102
ENTRYPOINT ["/usr/bin/montage-agent", "run", "-data-dir=/work"]
