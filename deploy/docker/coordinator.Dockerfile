# montage-coordinator on a minimal base (no shell, nonroot).
# docker build -f deploy/docker/coordinator.Dockerfile -t montage-coordinator .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/stream-montages/montage/internal/version.Version=${VERSION}" -o /out/montage-coordinator ./coordinator \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/stream-montages/montage/internal/version.Version=${VERSION}" -o /out/montagectl ./ctl \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/montage-coordinator /out/montagectl /usr/bin/
# A fresh named volume takes this directory's owner: the nonroot user.
COPY --from=build --chown=65532:65532 /out/data /data
EXPOSE 7400 7401 7402 7402/udp
VOLUME /data
ENTRYPOINT ["/usr/bin/montage-coordinator"]
CMD ["-data-dir=/data", "-listen=0.0.0.0:7400"]
