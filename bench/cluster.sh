#!/usr/bin/env bash
# Coordinator cluster benchmarks on a 3-node loopback cluster (in-process):
# grant+complete throughput, LeaseTask latency, failover time. raft's own
# log lines go to stderr and are dropped so the figures stay readable.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/cluster.test" ./coordinator/cluster
go test -c -o "$tmp/api.test" ./coordinator/api
(cd coordinator/cluster && "$tmp/cluster.test" -test.run '^$' -test.bench BenchmarkGrantComplete -test.benchtime 4000x -test.count 5 2>/dev/null | grep '^Benchmark')
(cd coordinator/api && "$tmp/api.test" -test.run '^$' -test.bench BenchmarkLeaseLatency -test.benchtime 1000x -test.count 3 2>/dev/null | grep '^Benchmark')
for _ in 1 2 3 4 5; do
  (cd coordinator/cluster && "$tmp/cluster.test" -test.run '^$' -test.bench BenchmarkFailover -test.benchtime 1x 2>/dev/null | grep '^Benchmark')
done
# The same failover with real processes and SIGKILL (builds the binaries).
go test ./e2e -run '^$' -bench BenchmarkLeaderSIGKILLFailover -benchtime 5x -count 1 -v 2>&1 | grep -E 'run [0-9]|^Benchmark'
