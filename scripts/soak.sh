#!/usr/bin/env bash
# The chaos soak: three coordinators on versitygw, four agents, a stream of
# small jobs, and a coordinator or agent SIGKILLed or SIGSTOPped every
# 15-40 s for SOAK_MINUTES (default 10). The full log goes to out/soak.log;
# the last line printed is the summary, e.g.
#   soak: jobs=120 succeeded=120 failed=0 lost=0 duplicate_completions=0 kills=20 orphans=0
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_MINUTES=${SOAK_MINUTES:-10}
mkdir -p out
log=out/soak.log
timeout_m=$(awk -v m="$SOAK_MINUTES" 'BEGIN { printf "%d", m + 15 }')
status=0
go test -count=1 -timeout "${timeout_m}m" -run '^TestSoak$' -v ./e2e >"$log" 2>&1 || status=$?
grep -E '^\s+soak_test.go:[0-9]+: chaos:' "$log" || true
if [ "$status" -ne 0 ]; then
  grep -v 'vgw |' "$log" | tail -n 80 >&2
  echo "soak failed (exit $status); the whole log is in $log" >&2
fi
line=$(grep -E '^soak: ' "$log" | tail -n 1 || true)
if [ -z "$line" ]; then
  echo "soak: no summary line; see $log" >&2
  exit 1
fi
echo "$line"
exit "$status"
