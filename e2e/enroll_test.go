package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

var enrollToken = regexp.MustCompile(`enroll-[0-9a-f]{64}`)

// enroll makes a one-time token with montagectl and checks the command it
// prints for the PC.
func enroll(t *testing.T, env []string, url string, args ...string) string {
	t.Helper()
	r := ctlEnv(t, env, url, append([]string{"agent", "enroll"}, args...)...)
	if r.code != 0 {
		t.Fatalf("agent enroll: %s %s", r.stdout, r.stderr)
	}
	tok := enrollToken.FindString(r.stdout)
	if tok == "" {
		t.Fatalf("no token in:\n%s", r.stdout)
	}
	mustContain(t, r.stdout, "montage-agent install --coordinator "+url+" --enroll "+tok, "enroll output")
	return tok
}

// A PC enrols with a one-time token instead of the farm's join token: the
// token registers one agent once, the agent keeps working across restarts
// with its own credential, and once removed its calls fail with
// Unauthenticated. The shared join token still works beside it.
func TestEnrollment(t *testing.T) {
	env := []string{"MONTAGE_OPERATOR_TOKEN=" + operatorToken, "MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}
	c := startCoordinatorEnv(t, env, t.TempDir(), freePort(t))
	op := []string{"MONTAGE_TOKEN=" + operatorToken}
	if r := ctlEnv(t, op, c.url, "agent", "enroll", "--expires", "10s"); r.code == 0 || !strings.Contains(r.stderr, "expires_seconds") {
		t.Errorf("a 10 s token: exit %d %s", r.code, r.stderr)
	}
	if r := ctlEnv(t, []string{"MONTAGE_TOKEN=" + joinToken}, c.url, "agent", "enroll"); r.code == 0 || !strings.Contains(r.stderr, "Unauthenticated") {
		t.Errorf("enroll with the join token: exit %d %s", r.code, r.stderr)
	}
	tok := enroll(t, op, c.url, "--name", "garage-pc", "--expires", "1h")

	dataDir := t.TempDir()
	agentArgs := []string{"-coordinator", c.url, "-data-dir", dataDir, "-enroll", tok, "-log-level", "debug"}
	// No join token in its environment: the enrolment is all it has.
	a := startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN="}, "montage-agent", agentArgs...)
	waitFor(t, time.Minute, "the enrolled agent listed", func() bool {
		r := ctlEnv(t, op, c.url, "agents")
		return strings.Contains(r.stdout, "garage-pc")
	})
	if r := ctlEnv(t, op, c.url, "submit", writeSpec(t, mixedSpec("enrolled", 1)), "--wait"); r.code != 0 {
		t.Fatalf("montage on the enrolled agent: %s %s", r.stdout, r.stderr)
	}

	// Restarted, it registers with its own credential (the token is spent).
	a.kill(syscall.SIGTERM)
	a = startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN="}, "montage-agent", agentArgs...)
	waitFor(t, time.Minute, "the restarted agent registered again", func() bool {
		return strings.Count(a.out.String(), `msg=registered`) >= 1
	})
	if strings.Contains(a.out.String(), "enrolled with a one-time token") {
		t.Error("the restart spent the token again")
	}

	// A second PC with the same token is refused, and says why.
	second := startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN="}, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-enroll", tok)
	select {
	case <-second.done:
	case <-time.After(time.Minute):
		t.Fatal("an agent with a spent token kept running")
	}
	mustContain(t, second.out.String(), "the enrolment token is unknown or already used", "second agent's output")

	// Removed by name, its credential stops working at once.
	secret, err := os.ReadFile(filepath.Join(dataDir, "credential"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(filepath.Join(dataDir, "agent-id"))
	if err != nil {
		t.Fatal(err)
	}
	a.kill(syscall.SIGTERM)
	if r := ctlEnv(t, op, c.url, "agent", "remove", "garage-pc"); r.code != 0 {
		t.Fatalf("agent remove garage-pc: %s", r.stderr)
	}
	cred := strings.TrimSpace(string(id)) + "." + strings.TrimSpace(string(secret))
	as := montagev1connect.NewAgentServiceClient(&http.Client{Transport: bearer(cred)}, c.url)
	_, err = as.LeaseTask(context.Background(), connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: strings.TrimSpace(string(id)), FreeSlots: 1}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a removed agent's call: %v, want Unauthenticated", err)
	}
	// The farm's join token still registers agents where it is configured.
	withJoin := startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-name", "joined")
	waitFor(t, time.Minute, "an agent with the join token", func() bool {
		return strings.Contains(ctlEnv(t, op, c.url, "agents").stdout, "joined")
	})
	withJoin.kill(syscall.SIGTERM)
}

// make release builds the three programs for every target, stamped with
// the version, packages and a checksum of each; then (as root) the .deb
// installs with dpkg, its agent enrols with a dev coordinator, shows its
// version, renders a montage, and dpkg removes it cleanly.
func TestRelease(t *testing.T) {
	dist := t.TempDir()
	const version = "0.1.0~e2e"
	cmd := exec.Command("../scripts/release.sh")
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, target := range []string{"linux_amd64", "linux_arm64", "darwin_amd64", "darwin_arm64", "windows_amd64"} {
		for _, prog := range []string{"montage-coordinator", "montage-agent", "montagectl"} {
			if strings.HasPrefix(target, "windows") {
				prog += ".exe"
			}
			want = append(want, target+"/"+prog)
		}
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, pkg := range []string{"montage-agent", "montage-coordinator"} {
			want = append(want, pkg+"_"+version+"_"+arch+".deb")
		}
	}
	want = append(want, "montage-agent-"+version+"-1.x86_64.rpm", "montage-coordinator-"+version+"-1.aarch64.rpm")
	for _, f := range want {
		if _, err := os.Stat(filepath.Join(dist, f)); err != nil {
			t.Errorf("release lacks %s", f)
		}
		if !strings.Contains(string(sums), "  "+f+"\n") {
			t.Errorf("SHA256SUMS does not list %s", f)
		}
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	native := filepath.Join(dist, "linux_"+runtime.GOARCH)
	for _, c := range [][]string{{"montage-agent", "-version"}, {"montage-coordinator", "-version"}, {"montagectl", "version"}} {
		out, err := exec.Command(filepath.Join(native, c[0]), c[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c[0]+" "+version+" (") {
			t.Errorf("%s %s: %v %s", c[0], c[1], err, out)
		}
	}
	t.Run("deb", func(t *testing.T) { debianPackage(t, dist, version) })
}

func debianPackage(t *testing.T, dist, version string) {
	if os.Geteuid() != 0 {
		t.Skip("installing a .deb needs root (dpkg -i); run the e2e tests as root to include it")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("not a Debian system: dpkg is missing")
	}
	if out, err := exec.Command("dpkg", "-s", "montage-agent").CombinedOutput(); err == nil {
		t.Fatalf("montage-agent is installed on this machine already; this test would replace it:\n%s", out)
	}
	deb := filepath.Join(dist, "montage-agent_"+version+"_"+runtime.GOARCH+".deb")
	t.Cleanup(func() { _ = exec.Command("dpkg", "--purge", "montage-agent").Run() })
	if out, err := exec.Command("dpkg", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	const bin = "/usr/bin/montage-agent"
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) {
		t.Fatalf("%s -version: %v %s", bin, err, out)
	}
	for _, p := range []string{"/lib/systemd/system/montage-agent.service", "/etc/montage-agent/agent.yaml"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the package did not install %s: %v", p, err)
		}
	}
	if out, err := exec.Command("id", "montage-agent").CombinedOutput(); err != nil {
		t.Errorf("no montage-agent user after install: %s", out)
	}

	c := startCoordinator(t, t.TempDir(), freePort(t), "-dev", "-dev-agent=false")
	tok := enroll(t, nil, c.url, "--name", "packaged")
	a := start(t, bin, "-coordinator", c.url, "-data-dir", t.TempDir(), "-enroll", tok)
	waitFor(t, time.Minute, "the packaged agent listed with its version", func() bool {
		r := ctl(t, c.url, "agents")
		return strings.Contains(r.stdout, "packaged") && strings.Contains(r.stdout, version)
	})
	if r := ctl(t, c.url, "submit", writeSpec(t, mixedSpec("packaged", 1)), "--wait"); r.code != 0 {
		t.Fatalf("montage on the packaged agent: %s %s", r.stdout, r.stderr)
	}
	a.kill(syscall.SIGTERM)

	if out, err := exec.Command("dpkg", "-r", "montage-agent").CombinedOutput(); err != nil {
		t.Fatalf("dpkg -r: %v\n%s", err, out)
	}
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("%s is still there after dpkg -r: %v", bin, err)
	}
	if out, err := exec.Command("dpkg", "--purge", "montage-agent").CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat("/etc/montage-agent"); !os.IsNotExist(err) {
		t.Errorf("/etc/montage-agent is still there after purge: %v", err)
	}
	if err := exec.Command("id", "montage-agent").Run(); err == nil {
		t.Error("the montage-agent user is still there after purge")
	}
}

// install --dry-run prints, for every platform, the config file and the
// service definition it would install, touching nothing; the systemd unit
// it prints for this PC passes systemd-analyze verify.
func TestInstallDryRun(t *testing.T) {
	if _, err := os.Stat("/etc/montage-agent"); err == nil {
		t.Skip("/etc/montage-agent exists on this machine: an agent is installed here")
	}
	bin := filepath.Join(binDir, "montage-agent")
	out, err := exec.Command(bin, "install", "--dry-run", "-os", "all", "--coordinator", "http://farm.lan:7400", "--enroll", "enroll-abc", "--slots", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("install --dry-run: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"# ==== linux: /etc/montage-agent/agent.yaml ====", "coordinator: http://farm.lan:7400", "enroll: enroll-abc", "slots: \"2\"",
		"data-dir: /var/lib/montage-agent", "ExecStart=" + bin + " run -config /etc/montage-agent/agent.yaml", "User=montage-agent", "ProtectSystem=strict",
		"# ==== darwin: /Library/Application Support/montage-agent/agent.yaml ====", "<key>ProgramArguments</key>",
		"# ==== windows: C:\\ProgramData\\montage-agent\\agent.yaml ====", "Start type:    automatic (delayed start)",
	} {
		mustContain(t, text, want, "install --dry-run")
	}
	if _, err := os.Stat("/etc/montage-agent"); err == nil {
		t.Fatal("a dry run wrote /etc/montage-agent")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: sudo apt-get install -y systemd")
	}
	start := strings.Index(text, "[Unit]")
	end := strings.Index(text, "# ==== darwin")
	unit := filepath.Join(t.TempDir(), "montage-agent.service")
	if err := os.WriteFile(unit, []byte(text[start:end]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify of the printed unit: %v\n%s", err, out)
	}
}
