package cluster_test

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/cluster/clustertest"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/internal/tlsconf"
	"github.com/stream-montages/montage/internal/tlstest"
)

func submit(t *testing.T, n *cluster.Node, id string) {
	t.Helper()
	resp, err := n.Apply(&fsm.Command{At: time.Unix(1, 0), Submit: &fsm.SubmitCmd{Job: &fsm.Job{ID: id}}})
	if err != nil || resp.Err != nil {
		t.Fatalf("submit %s: %v %v", id, err, resp.Err)
	}
}

func hasJob(n *cluster.Node, id string) bool {
	ok := false
	n.View(func(s *fsm.State) { ok = s.Jobs[id] != nil })
	return ok
}

// Three fresh nodes form one cluster by gossip and -bootstrap-expect; a write
// reaches every replica; losing the leader elects another that has it; a
// follower refuses writes; a node dead past the cleanup time leaves raft.
// Each new leader records its API address in the log, so every follower can
// forward to it whether or not gossip has told it of the leader yet.
func TestThreeNodeCluster(t *testing.T) {
	c := clustertest.Start(t, 3, []string{"http://c0.test:7400", "http://c1.test:7400", "http://c2.test:7400"}, 2*time.Second)
	leader := c.Leader(t, 10*time.Second)
	recorded := func(leader *cluster.Node) {
		t.Helper()
		want := c.Cfgs[c.Index(leader)].APIAddr
		for _, nd := range c.Nodes {
			if nd == nil {
				continue
			}
			clustertest.WaitFor(t, 5*time.Second, "the leader's API address in every replica", func() bool {
				var got string
				nd.View(func(s *fsm.State) { got = s.Coordinators[leader.ID] })
				return got == want
			})
			if got := nd.LeaderAPI(); got != want {
				t.Errorf("node %s: LeaderAPI %q, want %q", nd.ID, got, want)
			}
		}
	}
	recorded(leader)
	members, voters := leader.Members()
	if len(members) != 3 || len(voters) != 3 {
		t.Fatalf("members %v, voters %v; want 3 and 3", members, voters)
	}
	submit(t, leader, "j1")
	for i, nd := range c.Nodes {
		clustertest.WaitFor(t, 5*time.Second, "replication", func() bool { return hasJob(nd, "j1") })
		if nd != leader {
			if _, err := nd.Apply(&fsm.Command{Cancel: &fsm.CancelCmd{JobID: "j1"}}); err == nil {
				t.Errorf("follower %d accepted a write", i)
			}
		}
	}

	old := c.Index(leader)
	c.Stop(old)
	next := c.Leader(t, 10*time.Second)
	if !hasJob(next, "j1") {
		t.Fatal("the new leader lost a committed job")
	}
	recorded(next)
	submit(t, next, "j2")
	// The dead node is removed after the cleanup time; two voters remain.
	clustertest.WaitFor(t, 20*time.Second, "dead node removed from raft", func() bool {
		_, v := next.Members()
		return len(v) == 2
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A coordinator with the wrong gossip key never joins, and says why.
func TestWrongGossipKey(t *testing.T) {
	var logs lockedBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	g0 := clustertest.FreeAddr(t)
	a, err := cluster.Open(cluster.Config{DataDir: t.TempDir(), RaftAddr: clustertest.FreeAddr(t), Fast: true, Bootstrap: true, Gossip: g0, GossipKey: key(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := cluster.Open(cluster.Config{DataDir: t.TempDir(), RaftAddr: clustertest.FreeAddr(t), Fast: true, Gossip: clustertest.FreeAddr(t), GossipKey: key(2), Join: []string{g0}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	clustertest.WaitFor(t, 10*time.Second, "the join failure to be logged", func() bool {
		return strings.Contains(logs.String(), "cannot join the gossip pool yet") && strings.Contains(logs.String(), "gossip-key")
	})
	if m, _ := a.Members(); len(m) != 1 {
		t.Errorf("a node with the wrong key became a member: %v", m)
	}
	// The same key joins.
	c, err := cluster.Open(cluster.Config{DataDir: t.TempDir(), RaftAddr: clustertest.FreeAddr(t), Fast: true, Gossip: clustertest.FreeAddr(t), GossipKey: key(1), Join: []string{g0}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	clustertest.WaitFor(t, 10*time.Second, "the right key to join and become a voter", func() bool {
		_, v := a.Members()
		return len(v) == 2
	})
}

// Raft and gossip over mutual TLS: three nodes with certificates from the
// cluster's CA find each other, form a cluster and replicate; a plain
// connection, or a TLS client without such a certificate, gets no further
// than the handshake on either port.
func TestRaftAndGossipOverMutualTLS(t *testing.T) {
	files := tlstest.Make(t)
	srv, cli, err := tlsconf.Files{Cert: files.Cert, Key: files.Key, CA: files.CA}.Mutual()
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.Start(t, 3, nil, time.Minute, func(cfg *cluster.Config) {
		cfg.RaftTLS, cfg.RaftTLSClient = srv, cli
	})
	leader := c.Leader(t, 10*time.Second)
	submit(t, leader, "tls-job")
	for _, nd := range c.Nodes {
		clustertest.WaitFor(t, 5*time.Second, "replication over TLS", func() bool { return hasJob(nd, "tls-job") })
	}
	other, err := tlsconf.Client(files.CA, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{c.Cfgs[0].RaftAddr, c.Cfgs[0].Gossip} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte{0, 1, 2, 3, 4, 5, 6, 7}) // not a TLS ClientHello
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		conn.Close()
		if n > 0 && buf[0] != 0x15 { // 0x15: a TLS alert is all a stranger may get
			t.Errorf("%s: a plain connection got %d bytes of non-TLS answer", addr, n)
		}
		// A client without a certificate from the CA is refused.
		tc, err := tls.Dial("tcp", addr, other)
		if err == nil {
			_, _ = tc.Write([]byte("p"))
			_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = tc.Read(buf)
			tc.Close()
		}
		if err == nil {
			t.Errorf("%s: a client without a certificate was answered", addr)
		}
	}
}
