package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stream-montages/montage/internal/tlstest"
)

// The API over HTTPS: montagectl verifies the coordinator (and refuses one
// it cannot verify), the agent works through https presigned URLs, and
// -tls-skip-verify exists for tests.
func TestTLS(t *testing.T) {
	files := tlstest.Make(t)
	env := []string{"MONTAGE_OPERATOR_TOKEN=" + operatorToken, "MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}
	port := freePort(t)
	c := startCoordinatorEnvTLS(t, env, files, port)
	ok := []string{"MONTAGE_TOKEN=" + operatorToken}
	spec := writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 1}]\n", mediaURL))

	if r := ctlEnv(t, ok, c.url, "list"); r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("montagectl trusted an unverified coordinator: %d %s", r.code, r.stderr)
	}
	if r := ctlEnv(t, ok, c.url, "--tls-ca", files.OtherCA, "list"); r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("montagectl accepted a certificate from another CA: %d %s", r.code, r.stderr)
	}
	if r := ctlEnv(t, ok, c.url, "--tls-skip-verify", "list"); r.code != 0 {
		t.Errorf("--tls-skip-verify: %s", r.stderr)
	}
	startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-tls-ca", files.CA)
	r := ctlEnv(t, ok, c.url, "--tls-ca", files.CA, "submit", spec, "--wait")
	if r.code != 0 {
		t.Fatalf("submit over TLS: %s %s", r.stdout, r.stderr)
	}
	id := strings.Fields(r.stdout)[1]
	out := t.TempDir() + "/m.mp4"
	if r := ctlEnv(t, ok, c.url, "--tls-ca", files.CA, "download", id, "-o", out); r.code != 0 {
		t.Fatalf("download over TLS: %s", r.stderr)
	}
	checkMontage(t, out, []float64{1}, 1280, 720, "30/1")
}
