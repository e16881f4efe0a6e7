package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

const (
	operatorToken = "operator-token-for-e2e-0123"
	joinToken     = "agent-join-token-for-e2e-4567"
)

// ctlEnv runs montagectl against addr with extra environment variables.
func ctlEnv(t testing.TB, env []string, addr string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "montagectl"), append([]string{"--addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("montagectl %v: %v", args, err)
	}
	return ctlResult{so.String(), se.String(), code}
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// Wrong or missing tokens get Unauthenticated and change nothing; an agent
// may act only as itself; tokens never reach the logs.
func TestTokens(t *testing.T) {
	env := []string{"MONTAGE_OPERATOR_TOKEN=" + operatorToken, "MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}
	c := startCoordinatorEnv(t, env, t.TempDir(), freePort(t))
	spec := writeSpec(t, fmt.Sprintf("highlights: [{url: %s/a.mp4, at: 1, duration: 1}]\n", mediaURL))
	for _, tc := range []struct {
		name string
		env  []string
	}{{"no token", []string{"MONTAGE_TOKEN="}}, {"wrong token", []string{"MONTAGE_TOKEN=not-the-operator-token"}}, {"join token", []string{"MONTAGE_TOKEN=" + joinToken}}} {
		r := ctlEnv(t, tc.env, c.url, "submit", spec)
		if r.code == 0 || !strings.Contains(r.stderr, "Unauthenticated") {
			t.Errorf("%s: submit exited %d: %s", tc.name, r.code, r.stderr)
		}
	}
	ok := []string{"MONTAGE_TOKEN=" + operatorToken}
	if r := ctlEnv(t, ok, c.url, "list", "-o", "json"); r.code != 0 || strings.Contains(r.stdout, `"id"`) {
		t.Fatalf("refused submissions changed the job list: %s %s", r.stdout, r.stderr)
	}

	// An agent with the wrong join token stops with a clear error.
	bad := startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN=wrong-join-token-000000"}, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir())
	select {
	case <-bad.done:
	case <-time.After(30 * time.Second):
		t.Fatal("an agent with a wrong join token kept running")
	}
	mustContain(t, bad.out.String(), "unauthenticated: missing or wrong token: Register needs the agent join token", "agent output")

	good := startEnv(t, []string{"MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir())
	if r := ctlEnv(t, ok, c.url, "submit", spec, "--wait"); r.code != 0 {
		t.Fatalf("authorised submit --wait: %s %s", r.stdout, r.stderr)
	}
	// From here agent-b must be the only agent asking for work: the real
	// agent would take the next job's task first.
	good.kill(syscall.SIGTERM)

	// Agents act only as themselves.
	ctx := context.Background()
	join := montagev1connect.NewAgentServiceClient(&http.Client{Transport: bearer(joinToken)}, c.url)
	creds := map[string]string{}
	register := func(id, secret string) (*connect.Response[montagev1.RegisterResponse], error) {
		return join.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{AgentId: id, Slots: 1, Credential: secret,
			Capabilities: &montagev1.AgentCapabilities{Encoders: []string{"libx264"}}}))
	}
	for _, id := range []string{"agent-a", "agent.b"} {
		r, err := register(id, strings.Repeat(id[len(id)-1:], 40))
		if err != nil || r.Msg.GetAgentCredential() == "" {
			t.Fatalf("register %s: %v", id, err)
		}
		creds[id] = r.Msg.GetAgentCredential()
	}
	creds["agent-b"] = creds["agent.b"] // an id with a dot authenticates too
	// The join token does not let anyone take over a registered id.
	if _, err := register("agent-a", strings.Repeat("x", 40)); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "montagectl agent remove agent-a") {
		t.Errorf("re-register agent-a with another secret: %v, want PermissionDenied naming the way out", err)
	}
	if _, err := register("agent-a", strings.Repeat("a", 40)); err != nil {
		t.Errorf("re-register agent-a with its own secret: %v", err)
	}
	if _, err := join.Heartbeat(ctx, connect.NewRequest(&montagev1.HeartbeatRequest{AgentId: "agent-a"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("heartbeat with the join token: %v", err)
	}
	asB := montagev1connect.NewAgentServiceClient(&http.Client{Transport: bearer(creds["agent-b"])}, c.url)
	asA := montagev1connect.NewAgentServiceClient(&http.Client{Transport: bearer(creds["agent-a"])}, c.url)
	if r := ctlEnv(t, ok, c.url, "submit", spec); r.code != 0 {
		t.Fatal(r.stderr)
	}
	lr, err := asB.LeaseTask(ctx, connect.NewRequest(&montagev1.LeaseTaskRequest{AgentId: "agent.b", FreeSlots: 1, WaitSeconds: 5}))
	if err != nil || len(lr.Msg.GetLeases()) != 1 {
		t.Fatalf("lease as agent-b: %v", err)
	}
	l := lr.Msg.GetLeases()[0]
	res := &montagev1.TaskResult{Key: l.GetOutputKey(), Size: 1, Sha256: strings.Repeat("0", 64)}
	_, err = asA.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent.b", TaskId: l.GetTaskId(), Token: l.GetToken(), Result: res}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("agent-a posing as agent-b: %v, want PermissionDenied", err)
	}
	_, err = asA.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{AgentId: "agent-a", TaskId: l.GetTaskId(), Token: l.GetToken(), Result: res}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("agent-a completing agent-b's lease: %v, want PermissionDenied", err)
	}
	for _, secret := range []string{operatorToken, joinToken, creds["agent-a"], creds["agent-b"]} {
		if strings.Contains(c.out.String(), secret) {
			t.Errorf("a token appears in the coordinator's log")
		}
	}
}
