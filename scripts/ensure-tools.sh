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
# apt_need PACKAGE WHY COMMAND…: installs a Debian package (as root) when
# one of its commands is missing, or says what to run.
apt_need() {
  local pkg="$1" why="$2" missing=""
  shift 2
  for c in "$@"; do command -v "$c" >/dev/null || missing=1; done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $pkg (apt-get)…" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; }
  else
    echo "$why: sudo apt-get install -y $pkg" >&2
    exit 1
  fi
}
# Prometheus and promtool: the observability tests scrape a real farm and
# check the metrics, the alert rules and every dashboard query.
apt_need prometheus "the observability tests need Prometheus and promtool" prometheus promtool
# tmux gives the terminal tests a real pseudo-terminal and screen.
apt_need tmux "the terminal tests need tmux" tmux
# Chromium, headless, for the web console's browser tests (chromedp).
apt_need chromium "the web console tests drive a headless chromium" chromium
