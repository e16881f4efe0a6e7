// Command montage-coordinator runs one coordinator: the raft node holding job
// state, the Connect API, the local object store and, with -dev, an embedded
// agent so that one process is a whole farm.
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stream-montages/montage/agent/egress"
	"github.com/stream-montages/montage/agent/transcribe"
	"github.com/stream-montages/montage/agent/worker"
	"github.com/stream-montages/montage/coordinator/api"
	"github.com/stream-montages/montage/coordinator/auth"
	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/config"
	"github.com/stream-montages/montage/coordinator/ui"
	"github.com/stream-montages/montage/internal/clock"
	"github.com/stream-montages/montage/internal/tlsconf"
	"github.com/stream-montages/montage/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "montage-coordinator:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.Load(flag.CommandLine, os.Args[1:])
	if err != nil {
		return err
	}
	if cfg.Version {
		fmt.Println("montage-coordinator", version.String())
		return nil
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)
	if cfg.Dev && cfg.DataDir == "" {
		d, err := os.MkdirTemp("", "montage-dev-")
		if err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		// A throwaway farm cleans up after a clean exit; pass -data-dir to
		// keep state across restarts.
		defer os.RemoveAll(d)
		cfg.DataDir = d
	}
	gossipKey, err := loadGossipKey(cfg.GossipKeyFile)
	if err != nil {
		return err
	}
	tokens, err := auth.Load(cfg.OperatorTokenFile, cfg.JoinTokenFile)
	if err == nil {
		tokens.Viewer, err = auth.LoadViewer(cfg.ViewerTokenFile)
	}
	if err != nil {
		return err
	}
	if err := cfg.CheckAuth(!tokens.Open()); err != nil {
		return err
	}
	tlsFiles := tlsconf.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}

	// The object store first: a misconfiguration stops us with one line
	// before anything else starts.
	var clk clock.Clock = clock.Real{}
	if p := os.Getenv("MONTAGE_TEST_CLOCK_FILE"); p != "" {
		// Tests only: a clock several processes share and a test moves
		// forward (schedules' slots, webhook retries).
		clk = &clock.Offset{Path: p}
		log.Warn("the clock is offset by the file in MONTAGE_TEST_CLOCK_FILE (tests only)", "file", p)
	}
	mux := http.NewServeMux()
	store, err := openStore(cfg, clk, mux, log)
	if err != nil {
		return err
	}
	// Bind the API first: a busy port should fail before raft starts.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	var raftTLS, raftClient, peerTLS *tls.Config
	if tlsFiles.Enabled() {
		apiTLS, err := tlsFiles.Server()
		if err != nil {
			return err
		}
		if raftTLS, raftClient, err = tlsFiles.Mutual(); err != nil {
			return err
		}
		if peerTLS, err = tlsconf.Client(cfg.TLSCA, false); err != nil {
			return err
		}
		ln = tls.NewListener(ln, apiTLS)
	}
	node, err := cluster.Open(cluster.Config{
		RaftTLS: raftTLS, RaftTLSClient: raftClient,
		DataDir: cfg.DataDir, NodeID: cfg.NodeID, RaftAddr: cfg.RaftAddr, RaftAdvertise: cfg.RaftAdvertise, GossipAdvertise: cfg.PeerHost,
		Fast: cfg.Dev || os.Getenv("MONTAGE_FAST_RAFT") == "1",
		// A lone coordinator forms a cluster of one; joiners wait to be added.
		Bootstrap: len(cfg.JoinAddrs) == 0, BootstrapExpect: cfg.BootstrapExpect,
		APIAddr: cfg.Advertise, Gossip: cfg.GossipAddr, Join: cfg.JoinAddrs, GossipKey: gossipKey, DeadCleanup: cfg.DeadCleanup,
		SnapshotThreshold: cfg.SnapshotThreshold, SnapshotInterval: cfg.SnapshotInterval, TrailingLogs: cfg.TrailingLogs,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer node.Shutdown()

	affinity := cfg.ConcatAffinity
	if affinity == 0 {
		affinity = -1 // the API's zero is its default
	}
	srv := api.New(node, store, clk, api.Config{ConcatAffinity: affinity,
		LeaseTTL: cfg.LeaseTTL, MaxAttempts: cfg.MaxAttempts, BlockAfter: cfg.BlockAfter, QuarantineAfter: cfg.QuarantineAfter, AgentGC: cfg.AgentGC,
		MaxQueuedJobs: cfg.MaxQueuedJobs, MaxTasksPerJob: cfg.MaxTasksPerJob, InlineConcatInputs: cfg.InlineConcat,
		MultipartThreshold: cfg.Multipart, PartSize: cfg.PartSize,
		Retention: cfg.Retention, PurgeDelay: cfg.PurgeDelay, JanitorInterval: cfg.JanitorEvery, CacheBudget: cfg.CacheBudget, Tokens: tokens, PeerTLS: peerTLS,
	}, log)
	srv.Mount(mux)
	// Ready means this node leads and has replayed its log, so reads are current.
	console := ui.Handler(tokens, cfg.TLSCert != "")
	mux.Handle("/ui/", console)
	mux.Handle("/ui", console)
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "no leader ready yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c, so gRPC clients work without TLS
	protocols.SetHTTP2(true)            // h2 over TLS with -tls-cert
	hs := &http.Server{Handler: srv.Forward(mux), Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go srv.Run(ctx)
	errCh := make(chan error, 2)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errCh <- fmt.Errorf("http: %w", err)
		}
	}()
	wait := node.WaitLeader
	if cfg.Clustered {
		wait = node.WaitLeaderKnown
	}
	if err := wait(30 * time.Second); err != nil {
		log.Warn("no leader yet; calls get Unavailable until an election completes", "err", err)
	}
	log.Info("coordinator ready", "api", cfg.Advertise, "raft", cfg.RaftAddr, "data_dir", cfg.DataDir, "dev", cfg.Dev, "tokens", !tokens.Open())
	if tokens.Open() && !cfg.Dev && !config.IsLoopback(cfg.Host) {
		log.Warn("-insecure-no-auth: the API is open to anyone who can reach " + cfg.Listen)
	}

	agentDone := make(chan struct{})
	if cfg.Dev && cfg.DevAgent {
		if err := startEmbeddedAgent(ctx, cfg, log, errCh, agentDone); err != nil {
			return err
		}
	} else {
		close(agentDone)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errCh:
		stop()
		<-agentDone
		return err
	}
	<-agentDone // the embedded agent hands its work back through the API first
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return nil
}

// openStore opens S3 when configured, else the local store in the data dir
// (whose signed URLs mux then serves).
func openStore(cfg *config.Coordinator, clk clock.Clock, mux *http.ServeMux, log *slog.Logger) (blob.Store, error) {
	if cfg.S3Endpoint != "" {
		sc := blob.S3Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket, Region: cfg.S3Region, TLS: cfg.S3TLS}
		if err := sc.LoadCredentials(cfg.S3CredsFile); err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s3, err := blob.NewS3(sctx, sc)
		if err != nil {
			return nil, err
		}
		log.Info("object store: S3", "store", s3.String())
		return s3, nil
	}
	dir := filepath.Join(cfg.DataDir, "objects")
	local, err := blob.NewLocal(dir, cfg.Advertise, clk)
	if err != nil {
		return nil, err
	}
	mux.Handle(blob.PathPrefix, local)
	log.Info("object store: local directory", "dir", dir)
	return local, nil
}

// startEmbeddedAgent runs -dev's agent; done closes when it has handed its
// work back.
func startEmbeddedAgent(ctx context.Context, cfg *config.Coordinator, log *slog.Logger, errCh chan<- error, done chan struct{}) error {
	// -dev is for one PC: sources on its own loopback (the samples of
	// `make demo`) are allowed; every other egress rule stays.
	loopback, _ := egress.ParseCIDRs("127.0.0.0/8,::1")
	// The embedded agent transcribes with OPENAI_API_KEY / OPENAI_BASE_URL
	// / OPENAI_MODEL, as a real one does.
	tr, err := transcribe.Configure("", "", "", nil)
	if err != nil {
		return fmt.Errorf("embedded agent: %w", err)
	}
	a, err := worker.New(ctx, worker.Config{Transcriber: tr,
		Coordinator: cfg.Advertise, DataDir: filepath.Join(cfg.DataDir, "agent"), Name: "embedded", Slots: cfg.AgentSlots,
		Log: log.With("component", "agent"), SourceClient: egress.Client(egress.Policy{Allow: loopback}, nil),
	})
	if err != nil {
		return fmt.Errorf("embedded agent: %w", err)
	}
	if cfg.DevAgentMetrics != "" {
		if err := a.ServeMetrics(ctx, cfg.DevAgentMetrics, ""); err != nil {
			return fmt.Errorf("-dev-agent-metrics-listen: %w", err)
		}
	}
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			errCh <- fmt.Errorf("embedded agent: %w", err)
		}
	}()
	return nil
}

// loadGossipKey reads the gossip encryption key from a file or
// MONTAGE_GOSSIP_KEY (base64; 16, 24 or 32 bytes). No key: gossip in clear.
func loadGossipKey(path string) ([]byte, error) {
	raw := os.Getenv("MONTAGE_GOSSIP_KEY")
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("-gossip-key-file: %w", err)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64: %w", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("gossip key: %d bytes; it must be 16, 24 or 32 (make one with: head -c 32 /dev/urandom | base64)", n)
	}
	return key, nil
}
