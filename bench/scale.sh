#!/usr/bin/env bash
# Platform scale: CompleteTask for a 2 MB and a 2 GB result on versitygw,
# then bench/scale (a 3-node cluster restored from a snapshot of 100,000
# finished jobs and 1,000 queued ones, driven by 200 simulated agents over
# HTTP). The last line is bench/scale's summary. SCALE_FLAGS passes flags
# (e.g. "-jobs 20000").
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/api.test" ./coordinator/api
(cd coordinator/api && "$tmp/api.test" -test.run '^$' -test.bench BenchmarkCompleteBySize -test.benchtime 3x 2>/dev/null | grep '^Benchmark')
go build -o "$tmp/scale" ./bench/scale
# shellcheck disable=SC2086
"$tmp/scale" -bin bin -dir "$tmp/run" ${SCALE_FLAGS:-} | tail -n 1
