#!/usr/bin/env bash
# make test-loaded: every test, three times in a row, while two busy loops
# compete for the CPUs. Tests must wait for events, never for an idle
# machine; this is how we check it (long: not part of .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
busy() { while :; do :; done; }
busy & b1=$!
busy & b2=$!
trap 'kill $b1 $b2 2>/dev/null || true' EXIT
for i in 1 2 3; do
  echo "== run $i of 3, under two busy loops"
  go test -count=1 -timeout 60m ./...
done
echo "== three runs passed under load"
