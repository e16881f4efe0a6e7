package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// serveMediaTLS serves the test media over HTTPS with a certificate of the
// given test CA.
func serveMediaTLS(t *testing.T, f tlstest.Files) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.FileServer(http.Dir(mediaDir)))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// The farm runs on TLS with its own CA (A); a source's certificate chains to
// another CA (B) that the agent's system roots hold (SSL_CERT_FILE): the
// montage succeeds, so the farm's CA never replaces the system roots for
// sources. A source whose certificate chains to neither fails, and the job
// says which source and what was wrong with its certificate.
func TestSourcesUseSystemRootsNotTheFarmCA(t *testing.T) {
	farm := tlstest.Make(t)
	sourceCA := tlstest.Make(t)
	stranger := tlstest.Make(t)
	good := serveMediaTLS(t, sourceCA)
	bad := serveMediaTLS(t, stranger)

	env := []string{"MONTAGE_OPERATOR_TOKEN=" + operatorToken, "MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}
	c := startCoordinatorEnvTLS(t, env, farm, freePort(t))
	startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN=" + joinToken, "SSL_CERT_FILE=" + sourceCA.CA},
		"montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-tls-ca", farm.CA)
	ok := []string{"MONTAGE_TOKEN=" + operatorToken}

	spec := writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 1}]\n", good))
	if r := ctlEnv(t, ok, c.url, "--tls-ca", farm.CA, "submit", spec, "--wait"); r.code != 0 {
		t.Fatalf("montage from a source under the system roots: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	badURL := bad + "/b.mp4"
	spec = writeSpec(t, fmt.Sprintf("highlights: [{url: %s, at: 1, duration: 1}]\n", badURL))
	r := ctlEnv(t, ok, c.url, "--tls-ca", farm.CA, "submit", spec, "--wait")
	if r.code != 2 {
		t.Fatalf("montage from an untrusted source: exit %d, want 2 (failed)\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	mustContain(t, r.stderr, "source "+badURL, "the failed job's error")
	mustContain(t, r.stderr, "certificate signed by unknown authority", "the failed job's error")
}
