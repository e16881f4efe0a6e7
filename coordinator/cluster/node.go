// Package cluster runs the coordinator's raft node: the replicated log on
// raft-boltdb, file snapshots, a TCP transport, and the FSM adapter that
// applies commands to fsm.State under a lock that readers share.
package cluster

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/gometrics"
)

// ErrNotLeader means this node cannot accept writes now.
var ErrNotLeader = errors.New("this coordinator is not the raft leader")

// Config says where a node keeps its data and how it talks to peers.
type Config struct {
	DataDir  string
	NodeID   string // empty: read from (or create in) DataDir
	RaftAddr string // host:port the raft transport binds
	// RaftAdvertise is the address peers dial (default RaftAddr); needed
	// when RaftAddr binds every interface.
	RaftAdvertise string
	// GossipAdvertise is the host peers use for gossip when Gossip binds
	// every interface (empty: memberlist picks a private address).
	GossipAdvertise string
	// Bootstrap makes a fresh node form a cluster of one.
	Bootstrap bool
	// Fast shortens raft timings (tests, -dev on loopback).
	Fast bool
	// ApplyTimeout bounds one proposal.
	ApplyTimeout time.Duration
	// SnapshotThreshold (log entries) and SnapshotInterval (how often raft
	// checks it) set when a snapshot is taken; 0 keeps 4096 and raft's 2m.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log (0:
	// raft's 10,240), for followers that fall behind and for audits.
	TrailingLogs uint64

	// APIAddr is this node's API base URL, told to the others by gossip so
	// followers can forward to the leader and agents can find every node.
	APIAddr string
	// Gossip is the memberlist bind address; empty runs without gossip (a
	// cluster of one).
	Gossip string
	// Join lists gossip addresses of coordinators to join.
	Join []string
	// GossipKey encrypts gossip (16, 24 or 32 bytes) when set.
	GossipKey []byte
	// BootstrapExpect > 1 makes fresh nodes wait until that many
	// coordinators see each other, then form the cluster together.
	BootstrapExpect int
	// DeadCleanup is how long a coordinator may be dead before the leader
	// removes it from raft (never below quorum).
	DeadCleanup time.Duration
	// RaftTLS and RaftTLSClient, when set, carry raft and gossip over
	// mutual TLS.
	RaftTLS       *tls.Config
	RaftTLSClient *tls.Config
}

// Node is one coordinator's raft member.
type Node struct {
	ID   string
	raft *raft.Raft
	fsm  *machine
	cfg  Config

	ready  atomic.Bool
	gossip *gossip
	notify chan bool
	stop   chan struct{}
	subsMu sync.Mutex
	subs   []chan bool

	closers []io.Closer
}

// Open starts a raft node over cfg.DataDir.
func Open(cfg Config) (*Node, error) {
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.DeadCleanup == 0 {
		cfg.DeadCleanup = 5 * time.Minute
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	id, err := nodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, cfg: cfg, fsm: newMachine(),
		notify: make(chan bool, 16), stop: make(chan struct{})}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(raftDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", raftDir, err)
	}
	n.closers = append(n.closers, store)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, logger)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	if cfg.RaftAdvertise == "" {
		cfg.RaftAdvertise = cfg.RaftAddr
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("raft address %q: %w", cfg.RaftAdvertise, err)
	}
	var trans raft.Transport
	if cfg.RaftTLS != nil {
		stream, err := newTLSStream(cfg.RaftAddr, addr, cfg.RaftTLS, cfg.RaftTLSClient)
		if err != nil {
			n.close()
			return nil, err
		}
		trans = raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, logger)
	} else {
		tcp, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, 3, 10*time.Second, logger)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
		}
		trans = tcp
	}
	n.closers = append(n.closers, trans.(io.Closer))

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = logger
	rc.SnapshotThreshold = 4096
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.NotifyCh = n.notify
	if cfg.Fast {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("read raft state: %w", err)
	}
	if cfg.Bootstrap && cfg.BootstrapExpect <= 1 && !has {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: raft.ServerAddress(cfg.RaftAdvertise)}}}
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, conf); err != nil {
			n.close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, trans)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	go n.watchLeadership()
	if cfg.Gossip != "" {
		g, err := startGossip(id, cfg.Gossip, cfg.GossipAdvertise, cfg.RaftAdvertise, cfg.APIAddr, cfg.GossipKey, cfg.RaftTLS, cfg.RaftTLSClient, cfg.Fast, hclogWriter{logger})
		if err != nil {
			_ = n.Shutdown()
			return nil, err
		}
		n.gossip = g
		peersFile := filepath.Join(cfg.DataDir, "gossip-peers.json")
		join := cfg.Join
		if has {
			// A restart: the peers it knew are where the cluster is now.
			for _, a := range savedPeers(peersFile) {
				if !slices.Contains(join, a) {
					join = append(join, a)
				}
			}
		}
		g.mu.Lock()
		g.peersFile = peersFile
		g.mu.Unlock()
		if len(join) > 0 {
			go n.joinLoop(join)
		}
		if cfg.BootstrapExpect > 1 && !has {
			go n.bootstrapWhenExpected(cfg.BootstrapExpect)
		}
		go n.reconcileLoop()
	}
	slog.Info("raft node started", "id", id, "addr", cfg.RaftAddr, "existing_state", has, "gossip", cfg.Gossip)
	return n, nil
}

// hclogWriter sends memberlist's log lines through raft's logger.
type hclogWriter struct{ l hclog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "[ERR]") || strings.Contains(msg, "[WARN]") {
		w.l.Warn(msg)
	} else {
		w.l.Debug(msg)
	}
	return len(p), nil
}

// watchLeadership turns raft's leadership notifications into the ready flag
// and fans them out to subscribers. A new leader is ready only after a
// barrier: it has applied everything its predecessors committed.
func (n *Node) watchLeadership() {
	for {
		select {
		case <-n.stop:
			return
		case leader := <-n.notify:
			if leader {
				ok := readyAfterElection(
					func() error { return n.raft.Barrier(n.cfg.ApplyTimeout).Error() },
					func() bool { return n.raft.State() == raft.Leader },
					n.StepDown,
					func(attempt int) bool {
						select {
						case <-n.stop:
							return false
						case <-time.After(time.Duration(attempt) * 250 * time.Millisecond):
							return true
						}
					})
				if !ok {
					continue
				}
				n.ready.Store(true)
				go n.recordAPIAddr()
			} else {
				n.ready.Store(false)
			}
			// Lease polls wait for work; on a change of leader they must
			// look again (and a demoted node's polls must end).
			n.fsm.wakeAll()
			n.subsMu.Lock()
			for _, c := range n.subs {
				select {
				case c <- leader:
				default:
				}
			}
			n.subsMu.Unlock()
		}
	}
}

// barrierAttempts is how often a new leader tries its barrier before it
// hands leadership on.
const barrierAttempts = 5

// readyAfterElection runs a new leader's barrier, retrying while it still
// leads (wait sleeps before each retry, false to give up). A leader that
// cannot get its barrier through steps down rather than lead without
// serving: a leader that is never ready would stall the whole farm.
func readyAfterElection(barrier func() error, leads func() bool, stepDown func() error, wait func(attempt int) bool) bool {
	for attempt := 1; attempt <= barrierAttempts; attempt++ {
		if !leads() {
			return false
		}
		err := barrier()
		if err == nil {
			return true
		}
		slog.Warn("barrier after election failed", "attempt", attempt, "err", err)
		if attempt < barrierAttempts && !wait(attempt) {
			return false
		}
	}
	if leads() {
		slog.Error("barrier after election keeps failing; handing leadership on")
		if err := stepDown(); err != nil {
			slog.Error("leadership transfer failed", "err", err)
		}
	}
	return false
}

func (n *Node) joinLoop(addrs []string) {
	wait := 200 * time.Millisecond
	for {
		err := n.gossip.join(addrs)
		if err == nil {
			slog.Info("joined the coordinator gossip pool", "via", addrs)
			return
		}
		slog.Warn("cannot join the gossip pool yet; retrying (a wrong or missing -gossip-key also shows as this)", "addrs", addrs, "err", err)
		select {
		case <-n.stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// bootstrapWhenExpected forms the cluster once the expected number of
// coordinators see each other. Every one of them proposes the same
// configuration (all alive members), which raft accepts as one bootstrap.
func (n *Node) bootstrapWhenExpected(expect int) {
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var servers []raft.Server
		for _, m := range n.gossip.list() {
			if m.Alive && m.RaftAddr != "" {
				servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
			}
		}
		if len(servers) < expect {
			continue
		}
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			slog.Warn("bootstrap", "err", err)
			continue
		}
		slog.Info("cluster bootstrapped", "servers", len(servers))
		return
	}
}

// reconcileLoop lets the leader keep raft's voters in step with gossip:
// coordinators that joined become voters, and coordinators dead longer than
// DeadCleanup are removed if quorum survives without them (as Nomad's
// autopilot does).
func (n *Node) reconcileLoop() {
	every := 2 * time.Second
	if n.cfg.Fast {
		every = 200 * time.Millisecond
	}
	for {
		select {
		case <-n.stop:
			return
		case <-n.gossip.changed:
		case <-time.After(every):
		}
		if n.IsLeader() {
			n.reconcile()
		}
	}
}

func (n *Node) reconcile() {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := map[string]raft.ServerAddress{}
	for _, s := range f.Configuration().Servers {
		voters[string(s.ID)] = s.Address
	}
	members := n.gossip.list()
	for _, m := range members {
		if _, ok := voters[m.ID]; ok || !m.Alive || m.RaftAddr == "" {
			continue
		}
		if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, 10*time.Second).Error(); err != nil {
			slog.Warn("add voter", "id", m.ID, "err", err)
			continue
		}
		slog.Info("coordinator added to raft as a voter", "id", m.ID, "raft", m.RaftAddr)
		voters[m.ID] = raft.ServerAddress(m.RaftAddr)
	}
	alive := 0
	for id := range voters {
		if m, ok := n.gossip.get(id); (ok && m.Alive) || id == n.ID {
			alive++
		}
	}
	for _, m := range members {
		if _, ok := voters[m.ID]; !ok || m.Alive || m.ID == n.ID || time.Since(m.Since) < n.cfg.DeadCleanup {
			continue
		}
		// The remaining voters must still hold a quorum of the new configuration.
		if alive < (len(voters)-1)/2+1 {
			continue
		}
		if err := n.raft.RemoveServer(raft.ServerID(m.ID), 0, 10*time.Second).Error(); err != nil {
			slog.Warn("remove dead coordinator", "id", m.ID, "err", err)
			continue
		}
		slog.Info("dead coordinator removed from raft", "id", m.ID, "dead_for", time.Since(m.Since).Round(time.Second))
		delete(voters, m.ID)
	}
}

// Members lists the coordinators gossip knows, with whether each is a raft
// voter. Without gossip it is this node alone.
func (n *Node) Members() ([]Member, map[string]bool) {
	voters := map[string]bool{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			voters[string(s.ID)] = s.Suffrage == raft.Voter
		}
	}
	if n.gossip == nil {
		return []Member{{ID: n.ID, RaftAddr: n.cfg.RaftAddr, APIAddr: n.cfg.APIAddr, Alive: true}}, voters
	}
	return n.gossip.list(), voters
}

// LeaderAPI is the leader's API base URL, empty when unknown.
func (n *Node) LeaderAPI() string {
	_, id := n.Leader()
	if id == "" {
		return ""
	}
	if id == n.ID {
		return n.cfg.APIAddr
	}
	if n.gossip != nil {
		if m, ok := n.gossip.get(id); ok && m.APIAddr != "" {
			return m.APIAddr
		}
	}
	// Gossip may not have told us of a node that joined a moment before a
	// partition; the leader's own record in the log is there by now.
	var addr string
	n.View(func(s *fsm.State) { addr = s.Coordinators[id] })
	return addr
}

// recordAPIAddr writes this new leader's API address into the log, unless
// it is there already.
func (n *Node) recordAPIAddr() {
	if n.cfg.APIAddr == "" {
		return
	}
	var have string
	n.View(func(s *fsm.State) { have = s.Coordinators[n.ID] })
	if have == n.cfg.APIAddr {
		return
	}
	if _, err := n.Apply(&fsm.Command{Coordinator: &fsm.CoordinatorCmd{ID: n.ID, APIAddr: n.cfg.APIAddr}}); err != nil {
		slog.Warn("cannot record this coordinator's API address", "err", err)
	}
}

// RemoveServer takes a coordinator out of raft (cluster remove).
func (n *Node) RemoveServer(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}

func nodeID(dir, given string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		if given != "" && given != string(bytes.TrimSpace(b)) {
			return "", fmt.Errorf("data dir %s belongs to node %q, not %q", dir, bytes.TrimSpace(b), given)
		}
		return string(bytes.TrimSpace(b)), nil
	}
	id := given
	if id == "" {
		h, _ := os.Hostname()
		id = fmt.Sprintf("%s-%d", h, time.Now().UnixNano()%1_000_000)
	}
	if err := os.WriteFile(p, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

func (n *Node) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i].Close()
	}
}

// Shutdown leaves gossip, stops raft and closes its stores.
func (n *Node) Shutdown() error {
	select {
	case <-n.stop:
		return nil
	default:
		close(n.stop)
	}
	if n.gossip != nil {
		n.gossip.shutdown()
	}
	var err error
	if n.raft != nil {
		err = n.raft.Shutdown().Error()
	}
	n.close()
	return err
}

// Apply proposes a command and waits for it to be applied here.
func (n *Node) Apply(c *fsm.Command) (fsm.Response, error) {
	b, err := c.Encode()
	if err != nil {
		return fsm.Response{}, fmt.Errorf("%w: encode: %v", fsm.ErrBadCommand, err)
	}
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fsm.Response{}, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fsm.Response{}, fmt.Errorf("raft apply: %w", err)
	}
	resp, _ := f.Response().(fsm.Response)
	return resp, nil
}

// StepDown hands leadership to another voter.
func (n *Node) StepDown() error { return n.raft.LeadershipTransfer().Error() }

// Term is raft's current term: a leader's claim made in one term tells a
// later leader that it was not its own.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true on gaining leadership (after the new leader has
// caught up with the log) and false on losing it. Each call subscribes anew.
func (n *Node) LeaderCh() <-chan bool {
	c := make(chan bool, 16)
	n.subsMu.Lock()
	n.subs = append(n.subs, c)
	n.subsMu.Unlock()
	return c
}

// Barrier waits until every entry committed before it is applied here; a new
// leader calls it before it reads state to rebuild its lease table.
func (n *Node) Barrier(timeout time.Duration) error { return n.raft.Barrier(timeout).Error() }

// Leader returns the leader's raft address and id, empty when unknown.
func (n *Node) Leader() (string, string) {
	a, id := n.raft.LeaderWithID()
	return string(a), string(id)
}

// Stats are raft's own counters (state, indexes, term).
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// View runs f with the current state under a read lock. f must not keep
// pointers into the state after it returns.
func (n *Node) View(f func(s *fsm.State)) {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	f(n.fsm.state)
}

// WaitWork registers a lease poll of agentID (which provides what is
// listed): the channel closes when a task it could take becomes runnable,
// its leases or its record change, or leadership changes, not on every
// apply. Register before evaluating; call cancel when done.
func (n *Node) WaitWork(agentID string, provides []string) (<-chan struct{}, func()) {
	return n.fsm.Wait(agentID, provides)
}

// Collectors are the node's Prometheus metrics: apply and snapshot
// timings, lease poll wakes, raft's role, term and indexes, gossip members,
// and raft's and memberlist's own go-metrics.
func (n *Node) Collectors() []prometheus.Collector {
	return append(n.fsm.collectors(), nodeCollector{n}, gometrics.Global())
}

// Snapshot takes a raft snapshot now (operators: before maintenance).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Changed returns a channel closed at the next applied command.
func (n *Node) Changed() <-chan struct{} {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return n.fsm.changed
}

// WaitLeader waits until this node leads and has applied every entry of
// its log. A restarted node restores its snapshot at once but replays the
// entries after it only once they are committed again, so until the barrier
// returns its state can be behind what clients were told.
func (n *Node) WaitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if n.IsLeader() && n.Ready() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leadership within %s", timeout)
}

// WaitLeaderKnown waits until some node (maybe this one) is known to lead.
func (n *Node) WaitLeaderKnown(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if addr, _ := n.Leader(); addr != "" && (!n.IsLeader() || n.Ready()) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leader within %s", timeout)
}

// Ready reports whether this node has caught up with its log since it
// started, so that its reads are current.
func (n *Node) Ready() bool { return n.ready.Load() }
