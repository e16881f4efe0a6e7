// Package prometheus holds the farm's Prometheus configuration; this test
// checks it with promtool, the alert rules against their unit tests.
package prometheus

import (
	"os/exec"
	"testing"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: make test installs it (or: sudo apt-get install -y prometheus)")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func TestConfigAndRules(t *testing.T) {
	promtool(t, "check", "config", "prometheus.yml")
	promtool(t, "check", "config", "compose.yml")
	promtool(t, "check", "rules", "montage-rules.yml")
	promtool(t, "test", "rules", "montage-rules_test.yml")
}
