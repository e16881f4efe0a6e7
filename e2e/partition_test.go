package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/s3test"
)

// netns is a set of network namespaces made for one test: a hub with a
// bridge, and one namespace per coordinator joined to it by a veth pair.
// Every address lives inside these namespaces; nothing leaves the machine.
type netns struct {
	t      *testing.T
	prefix string
}

func (n *netns) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (n *netns) name(s string) string { return n.prefix + s }

func ipPath(t *testing.T) string {
	p, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("iproute2 is not installed: %v", err)
	}
	return p
}

// setupNetns builds hub + nodes; it skips the test (and only this test) when
// namespaces cannot be made here.
func setupNetns(t *testing.T, nodes int) *netns {
	t.Helper()
	n := &netns{t: t, prefix: fmt.Sprintf("mt%d-", time.Now().UnixNano()%100000)}
	if err := n.ip("netns", "add", n.name("hub")); err != nil {
		t.Skipf("network namespaces are not available here (needs root and iproute2): %v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < nodes; i++ {
			_ = n.ip("netns", "del", n.name(fmt.Sprint(i)))
		}
		_ = n.ip("netns", "del", n.name("hub"))
	})
	hub := n.name("hub")
	steps := [][]string{
		{"-n", hub, "link", "add", "br0", "type", "bridge"},
		{"-n", hub, "addr", "add", "10.213.0.100/24", "dev", "br0"},
		{"-n", hub, "link", "set", "br0", "up"},
		{"-n", hub, "link", "set", "lo", "up"},
	}
	for i := 0; i < nodes; i++ {
		ns := n.name(fmt.Sprint(i))
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", fmt.Sprintf("%sv%d", n.prefix, i), "netns", ns, "type", "veth", "peer", "name", fmt.Sprintf("h%d", i), "netns", hub},
			[]string{"-n", ns, "link", "set", fmt.Sprintf("%sv%d", n.prefix, i), "name", "eth0"},
			[]string{"-n", ns, "addr", "add", fmt.Sprintf("10.213.0.%d/24", i+1), "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", hub, "link", "set", fmt.Sprintf("h%d", i), "master", "br0"},
			[]string{"-n", hub, "link", "set", fmt.Sprintf("h%d", i), "up"},
		)
	}
	for _, s := range steps {
		if err := n.ip(s...); err != nil {
			t.Skipf("cannot build the test network here: %v", err)
		}
	}
	return n
}

// cut and heal take node i off the bridge and put it back.
func (n *netns) cut(i int) error {
	return n.ip("-n", n.name("hub"), "link", "set", fmt.Sprintf("h%d", i), "down")
}

func (n *netns) heal(i int) error {
	return n.ip("-n", n.name("hub"), "link", "set", fmt.Sprintf("h%d", i), "up")
}

// in runs a binary inside namespace ns.
func (n *netns) in(t *testing.T, ns string, env []string, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, env, ipPath(t), append([]string{"netns", "exec", n.name(ns), filepath.Join(binDir, name)}, args...)...)
}

func (n *netns) ctl(t *testing.T, node int, env []string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name(fmt.Sprint(node)), filepath.Join(binDir, "montagectl"),
		"--addr", fmt.Sprintf("http://10.213.0.%d:7400", node+1)}, args...)...)
	cmd.Env = append(cmd.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return ctlResult{so.String(), se.String(), code}
}

// Isolate the leader from the other two: the majority elects a leader and
// keeps serving, the minority refuses writes, and after healing every node
// holds the same state.
func TestPartitionIsolatesLeader(t *testing.T) {
	bin, err := s3test.Binary()
	if err != nil {
		t.Fatal(err)
	}
	n := setupNetns(t, 3)
	s3dir := t.TempDir()
	start(t, ipPath(t), "netns", "exec", n.name("hub"), bin, "--access", s3test.AccessKey, "--secret", s3test.SecretKey,
		"--port", "10.213.0.100:7070", "posix", s3dir)
	env := append([]string{"MONTAGE_FAST_RAFT=1", "MONTAGE_OPERATOR_TOKEN=" + operatorToken, "MONTAGE_AGENT_JOIN_TOKEN=" + joinToken}, s3Env...)
	for i := 0; i < 3; i++ {
		n.in(t, fmt.Sprint(i), env, "montage-coordinator", "-node-id", fmt.Sprintf("c%d", i), "-data-dir", t.TempDir(),
			"-listen", fmt.Sprintf("10.213.0.%d:7400", i+1), "-bootstrap-expect", "3", "-join", "10.213.0.1:7402",
			"-s3-endpoint", "http://10.213.0.100:7070", "-s3-bucket", "partition", "-dead-server-cleanup", "10m")
	}
	tok := []string{"MONTAGE_TOKEN=" + operatorToken}
	// cluster status is answered by the node asked: its own raft view.
	type view struct {
		LeaderID     string `json:"leader_id"`
		AppliedIndex string `json:"applied_index"`
		Members      []struct {
			Voter bool `json:"voter"`
		} `json:"members"`
	}
	viewOf := func(node int) (view, bool) {
		var v view
		r := n.ctl(t, node, tok, "cluster", "status", "-o", "json")
		return v, r.code == 0 && json.Unmarshal([]byte(r.stdout), &v) == nil
	}
	status := func(node int) (leader string, ok bool) {
		v, ok := viewOf(node)
		voters := 0
		for _, m := range v.Members {
			if m.Voter {
				voters++
			}
		}
		return v.LeaderID, ok && voters == 3
	}
	var leader string
	waitFor(t, 60*time.Second, "a three-voter cluster across the namespaces", func() bool {
		l, ok := status(0)
		leader = l
		return ok && l != ""
	})
	li := int(leader[1] - '0')
	spec := writeSpec(t, "highlights: [{url: http://10.213.0.100:9/v.mp4, at: 1, duration: 1}]\n")
	if r := n.ctl(t, li, tok, "submit", "-q", spec); r.code != 0 {
		t.Fatalf("submit before the partition: %s", r.stderr)
	}

	if err := n.cut(li); err != nil {
		t.Fatal(err)
	}
	maj := (li + 1) % 3
	waitFor(t, 30*time.Second, "the majority to elect a new leader", func() bool {
		l, _ := status(maj)
		return l != "" && l != leader
	})
	during := n.ctl(t, maj, tok, "submit", "-q", spec)
	if during.code != 0 {
		t.Fatalf("the majority refused a write: %s", during.stderr)
	}
	jobDuring := strings.TrimSpace(during.stdout)
	if r := n.ctl(t, li, tok, "submit", "-q", spec); r.code == 0 || !strings.Contains(r.stderr, "Unavailable") {
		t.Errorf("the isolated old leader accepted a write: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if l, _ := status(li); l == leader {
		t.Errorf("the isolated old leader still believes it leads")
	}

	if err := n.heal(li); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every node to follow one leader at one applied index", func() bool {
		var first view
		for i := 0; i < 3; i++ {
			v, ok := viewOf(i)
			if !ok || v.LeaderID == "" || v.LeaderID == leader && i != li {
				return false
			}
			if i == 0 {
				first = v
			} else if v.LeaderID != first.LeaderID || v.AppliedIndex != first.AppliedIndex {
				return false
			}
		}
		return true
	})
	r := n.ctl(t, li, tok, "list", "-o", "json")
	var list struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Jobs) != 2 || list.Jobs[0].ID != jobDuring {
		t.Errorf("jobs after healing: %s %v; want the two the majority accepted, newest %s", r.stdout, err, jobDuring)
	}
}
