// Package cluster runs the coordinator's raft node: the replicated log on
// raft-boltdb, file snapshots, a TCP transport, and the FSM adapter that
// applies commands to fsm.State under a lock that readers share.
package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/stream-montages/montage/coordinator/fsm"
)

// ErrNotLeader means this node cannot accept writes now.
var ErrNotLeader = errors.New("this coordinator is not the raft leader")

// Config says where a node keeps its data and how it talks to peers.
type Config struct {
	DataDir  string
	NodeID   string // empty: read from (or create in) DataDir
	RaftAddr string // host:port for the raft transport
	// Bootstrap makes a fresh node form a cluster of one.
	Bootstrap bool
	// Fast shortens raft timings (tests, -dev on loopback).
	Fast bool
	// ApplyTimeout bounds one proposal.
	ApplyTimeout time.Duration
}

// Node is one coordinator's raft member.
type Node struct {
	ID   string
	raft *raft.Raft
	fsm  *machine
	cfg  Config

	ready atomic.Bool

	closers []io.Closer
}

// machine adapts fsm.State to raft.FSM and tells watchers about changes.
type machine struct {
	mu      sync.RWMutex
	state   *fsm.State
	changed chan struct{}
}

func (m *machine) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := fsm.Decode(l.Data)
	if err != nil {
		return fsm.Response{Err: err}
	}
	m.mu.Lock()
	resp := m.state.Apply(l.Index, cmd)
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return resp
}

func (m *machine) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var buf bytes.Buffer
	if err := m.state.Snapshot(&buf); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshot{data: buf.Bytes()}, nil
}

func (m *machine) Restore(r io.ReadCloser) error {
	defer r.Close()
	st, err := fsm.Restore(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.state = st
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Open starts a raft node over cfg.DataDir.
func Open(cfg Config) (*Node, error) {
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o750); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	id, err := nodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	n := &Node{ID: id, cfg: cfg, fsm: &machine{state: fsm.New(), changed: make(chan struct{})}}
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
	addr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("raft address %q: %w", cfg.RaftAddr, err)
	}
	trans, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, addr, 3, 10*time.Second, logger)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
	}
	n.closers = append(n.closers, trans)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = logger
	rc.SnapshotThreshold = 4096
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
	if cfg.Bootstrap && !has {
		conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}}
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
	slog.Info("raft node started", "id", id, "addr", cfg.RaftAddr, "existing_state", has)
	return n, nil
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

// Shutdown stops raft and closes its stores.
func (n *Node) Shutdown() error {
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
		return fsm.Response{}, fmt.Errorf("encode command: %w", err)
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

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh delivers true on gaining and false on losing leadership.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

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
		if n.IsLeader() {
			if err := n.raft.Barrier(time.Until(deadline)).Error(); err != nil {
				return fmt.Errorf("catch up with the log: %w", err)
			}
			n.ready.Store(true)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no leadership within %s", timeout)
}

// Ready reports whether this node has caught up with its log since it
// started, so that its reads are current.
func (n *Node) Ready() bool { return n.ready.Load() }
