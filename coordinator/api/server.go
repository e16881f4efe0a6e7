// Package api serves the coordinator's Connect services (jobs and agents) on
// top of the raft node, the lease table and the blob store.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/coordinator/auth"
	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/lease"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/internal/clock"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// Config tunes the services.
type Config struct {
	LeaseTTL time.Duration // lifetime of a lease after each renewal
	// LeaseGrace is added to every inherited lease when this node becomes
	// leader, so agents have time to find it before anything expires.
	LeaseGrace   time.Duration
	MaxLeaseWait time.Duration // cap on a LeaseTask long poll
	MaxAttempts  int
	// MultipartThreshold: outputs larger than this are uploaded in parts of
	// PartSize (S3 needs at least 5 MiB per part but the last).
	MultipartThreshold int64
	PartSize           int64
	// Retention keeps finished jobs this long (0: forever); JanitorInterval
	// is how often the leader looks for housekeeping to do.
	Retention  time.Duration
	PurgeDelay time.Duration
	// Tokens guard the API; empty tokens leave it open (-dev on loopback).
	Tokens auth.Tokens
	// PeerTLS verifies other coordinators' APIs when forwarding over https.
	PeerTLS         *tls.Config
	JanitorInterval time.Duration
	// WatchInterval is how often WatchJob looks for progress that changed
	// without a raft write (heartbeat progress lives in memory).
	WatchInterval time.Duration
	// CacheBudget bounds the segment cache in bytes: 0 means no bound, a
	// negative value turns caching off.
	CacheBudget int64
	// BlockAfter failures of one job block an agent from it; QuarantineAfter
	// failures in a row quarantine it (0: fsm's defaults, 3 and 5).
	BlockAfter, QuarantineAfter int
	// MaxQueuedJobs bounds the farm's unfinished jobs (submit answers
	// ResourceExhausted past it); MaxTasksPerJob bounds one job's plan.
	MaxQueuedJobs, MaxTasksPerJob int
	// InlineConcatInputs is how many inputs a concat lease carries itself;
	// more go into an object the agent reads (0: 256).
	InlineConcatInputs int
	// AgentGC forgets agents this leader has not seen for this long and
	// that hold no lease (0: never).
	AgentGC time.Duration
}

func (c *Config) defaults() {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.LeaseGrace == 0 {
		c.LeaseGrace = 2 * c.LeaseTTL
	}
	if c.MaxLeaseWait == 0 {
		c.MaxLeaseWait = 20 * time.Second
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = 64 << 20
	}
	if c.PartSize == 0 {
		c.PartSize = 16 << 20
	}
	if c.JanitorInterval == 0 {
		c.JanitorInterval = 10 * time.Second
	}
	if c.InlineConcatInputs == 0 {
		c.InlineConcatInputs = 256
	}
	if c.MaxQueuedJobs == 0 {
		c.MaxQueuedJobs = 1000
	}
	if c.MaxTasksPerJob == 0 {
		c.MaxTasksPerJob = planner.DefaultMaxTasks
	}
	if c.WatchInterval == 0 {
		c.WatchInterval = 500 * time.Millisecond
	}
}

// Server implements the Connect services.
type Server struct {
	node   *cluster.Node
	leases *lease.Table
	store  blob.Store
	clock  clock.Clock
	cfg    Config
	log    *slog.Logger
	m      *metrics

	mu       sync.Mutex
	lastSeen map[string]time.Time // agent id → last call, on this node
	// leaderSince is when this node last became leader: until agents have
	// had time to call it, it cannot tell who is online.
	leaderSince time.Time
}

// New wires a server.
func New(node *cluster.Node, store blob.Store, clk clock.Clock, cfg Config, log *slog.Logger) *Server {
	cfg.defaults()
	return &Server{
		node:     node,
		leases:   lease.NewTable(cfg.LeaseTTL),
		store:    store,
		clock:    clk,
		cfg:      cfg,
		log:      log,
		m:        newMetrics(),
		lastSeen: map[string]time.Time{},
	}
}

// Mount adds the Connect handlers and /metrics to mux.
func (s *Server) Mount(mux *http.ServeMux) {
	// The spec limit (1 MiB) is checked with a field name; the transport limit
	// sits above it so that check is the one a user sees.
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(8 << 20), connect.WithInterceptors(authInterceptor{tokens: s.cfg.Tokens, hashOf: s.credentialHash})}
	mux.Handle(montagev1connect.NewJobServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewAgentServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewClusterServiceHandler(s, opts...))
	mux.Handle("/metrics", s.m.handler())
}

// credentialHash is the hash of an agent's credential in the replicated
// state ("" when the agent or its credential is unknown).
func (s *Server) credentialHash(agentID string) string {
	var h string
	s.node.View(func(st *fsm.State) {
		if a := st.Agents[agentID]; a != nil {
			h = a.CredentialHash
		}
	})
	return h
}

// urlTTL is how long the presigned URLs of a lease work: the expected work
// with a wide margin (slow PCs, big frames), not forever.
func urlTTL(expectedSeconds float64) time.Duration {
	return 15*time.Minute + time.Duration(20*expectedSeconds)*time.Second
}

// Run keeps the lease table in step with leadership, expires leases whose
// agents stopped renewing them and does storage housekeeping. It returns
// when ctx ends.
func (s *Server) Run(ctx context.Context) {
	tick := s.cfg.LeaseTTL / 5
	if tick < 50*time.Millisecond {
		tick = 50 * time.Millisecond
	}
	leader := false
	leaderCh := s.node.LeaderCh()
	// Housekeeping has its own loop: a multi-GB copy must not hold up lease
	// expiry.
	go s.janitorLoop(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-leaderCh:
			leader = isLeader
			if leader {
				s.takeOverLeases()
			} else {
				s.lostLeadership()
			}
		case <-s.clock.After(tick):
			if !leader && s.node.IsLeader() && s.node.Ready() {
				// LeaderCh drops edges when nobody reads it in time; catch up.
				leader = true
				s.takeOverLeases()
			}
			if leader && !s.node.IsLeader() {
				leader = false
				s.lostLeadership()
			}
			if leader {
				s.expireLeases()
			}
		}
	}
}

// takeOverLeases rebuilds the lease table from replicated state, giving every
// lease a grace period: the old leader's timers died with it.
func (s *Server) takeOverLeases() {
	if err := s.node.Barrier(10 * time.Second); err != nil {
		s.log.Warn("barrier after election failed", "err", err)
	}
	now := s.clock.Now().Add(s.cfg.LeaseGrace)
	var entries []lease.Entry
	s.node.View(func(st *fsm.State) {
		for _, t := range st.LeasedTasks() {
			entries = append(entries, lease.Entry{TaskID: t.ID, AgentID: t.AgentID, Token: t.LeaseToken, Deadline: now.Add(s.cfg.LeaseTTL), Since: s.clock.Now()})
		}
	})
	s.leases.Reset(entries)
	s.mu.Lock()
	s.leaderSince = s.clock.Now()
	s.mu.Unlock()
	s.log.Info("leadership gained; leases inherited", "leases", len(entries), "grace", s.cfg.LeaseGrace)
}

// lostLeadership forgets what only a leader keeps: its lease timers (the
// gauge of them with them, so a demoted node stops reporting leases).
func (s *Server) lostLeadership() {
	s.leases.Reset(nil)
	s.m.leases.Set(0)
}

func (s *Server) expireLeases() {
	// Every lease in the replicated state must be timed here, or one whose
	// agent died would never expire: adopt any the table lacks (granted in
	// the moment between an election and the table's rebuild, say).
	now := s.clock.Now()
	s.node.View(func(st *fsm.State) {
		for _, t := range st.LeasedTasks() {
			if e, ok := s.leases.Get(t.ID); !ok || e.Token != t.LeaseToken {
				s.leases.Track(t.ID, t.AgentID, t.LeaseToken, now)
			}
		}
	})
	for _, e := range s.leases.Expired(s.clock.Now()) {
		resp, err := s.node.Apply(&fsm.Command{At: s.clock.Now(), Expire: &fsm.ExpireCmd{TaskID: e.TaskID, Token: e.Token}})
		if err != nil {
			s.log.Warn("expire lease", "task", e.TaskID, "err", err)
			return
		}
		s.leases.Drop(e.TaskID)
		if resp.Err == nil {
			s.m.expired.Inc()
			s.log.Info("lease expired; task requeued or failed", "task", e.TaskID, "agent", e.AgentID, "token", e.Token)
		}
	}
	s.m.leases.Set(float64(s.leases.Len()))
}

// apply proposes a command stamped with this leader's clock and turns both
// transport and state-machine errors into Connect errors.
func (s *Server) apply(c *fsm.Command) (fsm.Response, error) {
	c.At = s.clock.Now().UTC()
	resp, err := s.node.Apply(c)
	if err != nil {
		return resp, s.notLeader(err)
	}
	if resp.Err != nil {
		return resp, toConnect(resp.Err)
	}
	return resp, nil
}

func (s *Server) notLeader(err error) error {
	if errors.Is(err, fsm.ErrBadCommand) {
		// A command that cannot even be encoded will not succeed on retry.
		return connect.NewError(connect.CodeInternal, err)
	}
	if errors.Is(err, cluster.ErrNotLeader) {
		addr, id := s.node.Leader()
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("this coordinator is not the leader (leader: %s %s); retry", id, addr))
	}
	return connect.NewError(connect.CodeUnavailable, err)
}

func (s *Server) requireLeader() error {
	if !s.node.IsLeader() {
		return s.notLeader(cluster.ErrNotLeader)
	}
	return s.requireReady()
}

// requireReady refuses reads until this node has replayed its log since it
// started: a restarted node's state is briefly behind what it acknowledged.
func (s *Server) requireReady() error {
	if !s.node.Ready() {
		return connect.NewError(connect.CodeUnavailable, errors.New("coordinator is starting and catching up with its log; retry"))
	}
	return nil
}

func toConnect(err error) error {
	switch {
	case errors.Is(err, fsm.ErrNotFound), errors.Is(err, fsm.ErrAgentUnknown):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, fsm.ErrStaleLease), errors.Is(err, fsm.ErrJobFinished), errors.Is(err, fsm.ErrNotRunnable):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, fsm.ErrWrongAgent):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, fsm.ErrBadCommand):
		return connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewError(connect.CodeUnknown, err)
}
