#!/usr/bin/env bash
# Installs the tools the checks need when missing: buf and protoc plugins
# for the generated-code check, staticcheck, versitygw (into
# $(go env GOPATH)/bin), Prometheus with promtool and tmux (apt-get).
set -euo pipefail
bin="$(go env GOPATH)/bin"
need() { # name module@version
  if [ ! -x "$bin/$1" ] && ! command -v "$1" >/dev/null; then
    echo "installing $1…" >&2
    go install "$2"
  fi
}
need buf github.com/bufbuild/buf/cmd/buf@v1.75.0
need protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
need protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
need staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
# A real S3 server for the object-store tests (about 90 s to build once).
need versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
# Prometheus and promtool: the observability tests scrape a real farm and
# check the metrics, the alert rules and every dashboard query.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing prometheus (apt-get)…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
  else
    echo "the observability tests need Prometheus and promtool: sudo apt-get install -y prometheus" >&2
    exit 1
  fi
fi
# tmux gives the terminal tests a real pseudo-terminal and screen.
if ! command -v tmux >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing tmux (apt-get)…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; }
  else
    echo "the terminal tests need tmux: sudo apt-get install -y tmux" >&2
    exit 1
  fi
fi
