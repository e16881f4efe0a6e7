// Package clustertest runs several coordinators' raft nodes in one process
// with tightened timings, for fast tests of joins, elections, forwarding,
// lease grace and removal (as Nomad's nomad/testing.go does).
package clustertest

import (
	"net"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/cluster"
)

// Cluster is N in-process nodes that found each other by gossip.
type Cluster struct {
	Nodes []*cluster.Node
	Cfgs  []cluster.Config
}

// FreeAddr returns a loopback address nobody listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start forms a cluster of n nodes with -bootstrap-expect n. apiAddrs (one
// per node, or nil) are the API URLs the nodes advertise.
// opts adjust each node's configuration (TLS, say).
func Start(t testing.TB, n int, apiAddrs []string, deadCleanup time.Duration, opts ...func(*cluster.Config)) *Cluster {
	t.Helper()
	c := &Cluster{}
	// Every address is picked before any node binds, so they must differ
	// from each other: the kernel may hand out a just-released port again.
	seen := map[string]bool{}
	distinct := func() string {
		for {
			if a := FreeAddr(t); !seen[a] {
				seen[a] = true
				return a
			}
		}
	}
	gossips := make([]string, n)
	rafts := make([]string, n)
	for i := range gossips {
		gossips[i], rafts[i] = distinct(), distinct()
	}
	for i := 0; i < n; i++ {
		cfg := cluster.Config{
			DataDir: t.TempDir(), RaftAddr: rafts[i], Fast: true,
			Gossip: gossips[i], BootstrapExpect: n, DeadCleanup: deadCleanup,
		}
		if apiAddrs != nil {
			cfg.APIAddr = apiAddrs[i]
		}
		if i > 0 {
			cfg.Join = []string{gossips[0]}
		}
		for _, o := range opts {
			o(&cfg)
		}
		node, err := cluster.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
		c.Cfgs = append(c.Cfgs, cfg)
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			if nd != nil {
				_ = nd.Shutdown()
			}
		}
	})
	c.Leader(t, 20*time.Second)
	return c
}

// Leader waits for a ready leader among the running nodes.
func (c *Cluster) Leader(t testing.TB, timeout time.Duration) *cluster.Node {
	t.Helper()
	var l *cluster.Node
	WaitFor(t, timeout, "a ready leader", func() bool {
		for _, nd := range c.Nodes {
			if nd != nil && nd.IsLeader() && nd.Ready() {
				l = nd
				return true
			}
		}
		return false
	})
	return l
}

// Index returns the position of node in the cluster.
func (c *Cluster) Index(node *cluster.Node) int {
	for i, nd := range c.Nodes {
		if nd == node {
			return i
		}
	}
	return -1
}

// Stop shuts node i down (as a crash would, from the others' view).
func (c *Cluster) Stop(i int) {
	_ = c.Nodes[i].Shutdown()
	c.Nodes[i] = nil
}

// WaitFor polls cond until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
