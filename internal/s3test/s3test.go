// Package s3test starts a real S3 server for tests: the Versity S3 Gateway
// (versitygw) over a temporary directory, with an IAM directory so tests can
// add users with fewer rights. scripts/ensure-tools.sh installs it.
package s3test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Root credentials of the test server.
const (
	AccessKey = "montage-root"
	SecretKey = "montage-root-secret"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Admin    string // admin API URL
	bin      string
}

// Binary finds versitygw on PATH or in $(go env GOPATH)/bin.
func Binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found; install it with `make tools` (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start runs a server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root, iam := filepath.Join(dir, "root"), filepath.Join(dir, "iam")
	for _, d := range []string{root, iam} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr,
		"--admin-port", admin, "--iam-dir", iam, "posix", root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	s := &Server{Endpoint: "http://" + addr, Admin: "http://" + admin, bin: bin}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CreateUser adds an account with the given role ("user" may not create
// buckets; "admin" may do anything).
func (s *Server) CreateUser(t testing.TB, access, secret, role string) {
	t.Helper()
	out, err := exec.Command(s.bin, "admin", "--access", AccessKey, "--secret", SecretKey, "--endpoint-url", s.Admin,
		"create-user", "--access", access, "--secret", secret, "--role", role).CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw create-user: %v: %s", err, out)
	}
}
