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
	cmd      *exec.Cmd
	out      *bytes.Buffer
	exited   chan struct{} // closed when the process has ended
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

// freeAddrs returns n distinct free loopback addresses. Each listener stays
// open until all are picked: closed one by one, the system may hand the
// same port out twice (the S3 and admin ports once came out equal, and the
// server could not bind).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

// Start runs a server until the test ends. A port taken by another process
// between picking it and the server binding it costs a retry on others.
func Start(t testing.TB) *Server {
	t.Helper()
	var (
		s   *Server
		err error
	)
	for try := 0; try < 3; try++ {
		addrs := freeAddrs(t, 2)
		if s, err = Run(t.TempDir(), addrs[0], addrs[1]); err == nil {
			break
		}
		t.Logf("versitygw on %v: %v", addrs, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out := s.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out)
		}
	})
	return s
}

// Run starts a server over dir (its objects and IAM live there) on addr,
// with its admin API on admin, and waits until it answers. Stop ends it.
// Benchmarks outside tests use it too.
func Run(dir, addr, admin string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	root, iam := filepath.Join(dir, "root"), filepath.Join(dir, "iam")
	for _, d := range []string{root, iam} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr,
		"--admin-port", admin, "--iam-dir", iam, "posix", root)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s := &Server{Endpoint: "http://" + addr, Admin: "http://" + admin, bin: bin, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.exited: // it could not bind, say: no use waiting
			return nil, fmt.Errorf("versitygw exited: %v\n%s", err, s.Stop())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("versitygw did not start: %v\n%s", err, s.Stop())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server and returns what it printed.
func (s *Server) Stop() string {
	_ = s.cmd.Process.Kill()
	<-s.exited
	return s.out.String()
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
