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
	"github.com/stream-montages/montage/coordinator/leader"
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
	// SyncVerifyBytes: a result the store cannot prove from its metadata
	// (it ignores upload checksums) is read back inside CompleteTask up to
	// this size; a larger one waits in VERIFYING for the leader (0: 64 MiB).
	SyncVerifyBytes int64
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
	// ConcatAffinity is how long a concat that just became runnable waits
	// for an agent keeping its segments (0: 3 s; negative: never waits).
	ConcatAffinity time.Duration
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
	if c.SyncVerifyBytes == 0 {
		c.SyncVerifyBytes = 64 << 20
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
	if c.ConcatAffinity == 0 {
		c.ConcatAffinity = 3 * time.Second
	}
}

// Server implements the Connect services.
type Server struct {
	node   *cluster.Node
	lead   *leader.Leader
	leases *lease.Table // the leader's
	store  blob.Store
	clock  clock.Clock
	cfg    Config
	log    *slog.Logger
	m      *metrics
	// statuses holds what agents last said of themselves (leader only).
	statuses agentStatuses
	// kept is which agents keep which jobs' segments (leader only).
	kept keepers

	claimMu sync.Mutex
	claims  map[string]bool // tasks whose grants are being proposed

	feedKick chan struct{} // a feed was added: poll now
	// fullSaid is when tickSchedules last logged a slot waiting for room
	// (only its goroutine reads and writes it).
	fullSaid time.Time
}

// New wires a server.
func New(node *cluster.Node, store blob.Store, clk clock.Clock, cfg Config, log *slog.Logger) *Server {
	cfg.defaults()
	m := newMetrics()
	m.reg.MustRegister(node.Collectors()...)
	store = blob.Observed(store, m.observeStore)
	lead := leader.New(node, store, clk, leader.Config{
		LeaseTTL: cfg.LeaseTTL, LeaseGrace: cfg.LeaseGrace, OnlineWindow: cfg.MaxLeaseWait + 3*cfg.LeaseTTL,
		JanitorInterval: cfg.JanitorInterval, Retention: cfg.Retention, PurgeDelay: cfg.PurgeDelay,
		CacheBudget: cfg.CacheBudget, AgentGC: cfg.AgentGC, BlockAfter: cfg.BlockAfter, QuarantineAfter: cfg.QuarantineAfter,
		OnLeases:  func(n int) { m.leases.Set(float64(n)) },
		OnApplied: m.applied,
		OnEvict: func(entries int, bytes int64) {
			m.evicted.Add(float64(entries))
			m.evictBytes.Add(float64(bytes))
		},
		OnReadBack: func(took time.Duration) { m.verify.WithLabelValues("deferred_read_back").Observe(took.Seconds()) },
	}, log)
	s := &Server{node: node, lead: lead, leases: lead.Leases, store: store, clock: clk, cfg: cfg, log: log, m: m, claims: map[string]bool{}, feedKick: make(chan struct{}, 1)}
	lead.OnExpire(func(taskID string) {
		m.expired.Inc()
		f := s.taskFacts(taskID)
		s.m.reports.WithLabelValues(f.typ, "expired").Inc()
		s.m.failures.WithLabelValues(f.typ, "lease_expired").Inc()
	})
	m.reg.MustRegister(farmCollector{s})
	return s
}

// Mount adds the Connect handlers and /metrics to mux.
func (s *Server) Mount(mux *http.ServeMux) {
	// The spec limit (1 MiB) is checked with a field name; the transport limit
	// sits above it so that check is the one a user sees.
	// Small messages go uncompressed: gzip's per-message set-up costs more
	// CPU than a lease or a completion is worth (it led the leader's
	// profile under 200 agents), and they are a few hundred bytes anyway.
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(8 << 20), connect.WithCompressMinBytes(4 << 10),
		connect.WithInterceptors(authInterceptor{tokens: s.cfg.Tokens, hashOf: s.credentialHash})}
	mux.Handle(montagev1connect.NewJobServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewAgentServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewClusterServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewHighlightServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewScheduleServiceHandler(s, opts...))
	mux.Handle(montagev1connect.NewMontageServiceHandler(s, opts...))
	mux.Handle("/metrics", s.m.handler())
	s.mountStandard(mux)
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

// Run does the leader's work (lease expiry, housekeeping) while this node
// leads, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.runLibrary(ctx)
	s.lead.Run(ctx)
}

// apply proposes a command stamped with this leader's clock and turns both
// transport and state-machine errors into Connect errors.
func (s *Server) apply(c *fsm.Command) (fsm.Response, error) {
	c.At = s.clock.Now().UTC()
	resp, err := s.node.Apply(c)
	if err != nil {
		return resp, s.notLeader(err)
	}
	s.m.applied(resp)
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
	case errors.Is(err, fsm.ErrEnrollment):
		return connect.NewError(connect.CodeUnauthenticated, err)
	case errors.Is(err, fsm.ErrWrongAgent):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, fsm.ErrBadCommand):
		return connect.NewError(connect.CodeInternal, err)
	case errors.Is(err, fsm.ErrExists), errors.Is(err, fsm.ErrAlreadyFired):
		return connect.NewError(connect.CodeAlreadyExists, err)
	}
	return connect.NewError(connect.CodeUnknown, err)
}
