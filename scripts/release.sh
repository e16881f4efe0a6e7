#!/usr/bin/env bash
# Cross-compiles the three programs (CGO off, version stamped) for every
# target, packages the agent and the coordinator as .deb and .rpm, and
# writes SHA256SUMS. TARGETS narrows the targets (e.g. TARGETS=linux/amd64).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${VERSION:-0.1.0}"
DIST="${DIST:-dist}"
TARGETS="${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}"
rm -rf "$DIST"
mkdir -p "$DIST"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
ldflags="-s -w -X github.com/stream-montages/montage/internal/version.Version=$VERSION -X github.com/stream-montages/montage/internal/version.Commit=$commit"
arches=()
for t in $TARGETS; do
  os="${t%/*}" arch="${t#*/}"
  ext=""
  [ "$os" = windows ] && ext=".exe"
  for prog in montage-coordinator:./coordinator montage-agent:./agent montagectl:./ctl; do
    name="${prog%%:*}" pkg="${prog#*:}"
    echo "build $os/$arch $name" >&2
    CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -ldflags "$ldflags" -o "$DIST/${os}_${arch}/$name$ext" "$pkg"
  done
  [ "$os" = linux ] && arches+=("$arch")
done
if [ ${#arches[@]} -gt 0 ]; then
  go run ./deploy/packages -version "$VERSION" -dist "$DIST" -arch "$(IFS=,; echo "${arches[*]}")"
fi
(cd "$DIST" && find . -type f ! -name SHA256SUMS | sed 's#^\./##' | sort | xargs sha256sum > SHA256SUMS)
echo "release $VERSION in $DIST:" >&2
cat "$DIST/SHA256SUMS" >&2
