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
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stream-montages/montage/agent/egress"
	"github.com/stream-montages/montage/agent/worker"
	"github.com/stream-montages/montage/coordinator/api"
	"github.com/stream-montages/montage/coordinator/auth"
	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/cluster"
	"github.com/stream-montages/montage/coordinator/config"
	"github.com/stream-montages/montage/internal/clock"
	"github.com/stream-montages/montage/internal/tlsconf"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "montage-coordinator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dev         = flag.Bool("dev", false, "single-node farm in one process: temporary data dir, local object store, embedded agent (loopback only)")
		listen      = flag.String("listen", "127.0.0.1:7400", "address for the API, object URLs and /metrics")
		dataDir     = flag.String("data-dir", "", "where raft state and objects live (default with -dev: a new temporary directory)")
		raftAddr    = flag.String("raft-addr", "", "address for raft traffic (default: the API port + 1 on the same host)")
		advertise   = flag.String("advertise", "", "base URL agents use to reach this coordinator (default: http://LISTEN)")
		nodeID      = flag.String("node-id", "", "raft node id (default: kept in the data dir, created from the hostname)")
		leaseTTL    = flag.Duration("lease-ttl", 15*time.Second, "lease lifetime after each heartbeat")
		maxAttempts = flag.Int("max-attempts", 3, "attempts per task before its job fails")
		devAgent    = flag.Bool("dev-agent", true, "with -dev, run an embedded agent")
		agentSlots  = flag.Int("agent-slots", 1, "with -dev, slots of the embedded agent")
		logLevel    = flag.String("log-level", "info", "debug, info, warn or error")

		s3Endpoint   = flag.String("s3-endpoint", "", "S3/MinIO endpoint (host:port or URL); empty keeps objects in the data dir")
		s3Bucket     = flag.String("s3-bucket", "montage", "S3 bucket (created if absent)")
		s3Region     = flag.String("s3-region", "us-east-1", "S3 region")
		s3TLS        = flag.Bool("s3-tls", false, "use HTTPS for a host:port endpoint (a URL's scheme decides otherwise)")
		s3CredsFile  = flag.String("s3-credentials-file", "", "file of MONTAGE_S3_ACCESS_KEY=… and MONTAGE_S3_SECRET_KEY=… lines (default: the environment)")
		multipart    = flag.Int64("multipart-threshold", 64<<20, "outputs larger than this many bytes are uploaded in parts")
		partSize     = flag.Int64("part-size", 16<<20, "multipart part size in bytes (S3 needs at least 5 MiB)")
		retain       = flag.Duration("retention", 7*24*time.Hour, "how long finished jobs and their outputs are kept (0 keeps them forever)")
		purgeDelay   = flag.Duration("purge-delay", time.Hour, "how long segments and attempt objects stay after a job's outputs are finalized")
		janitorEvery = flag.Duration("janitor-interval", 10*time.Second, "how often the leader does storage housekeeping")
		cacheBudget  = flag.Int64("cache-budget", 10<<30, "bytes of rendered segments kept for reuse by later jobs (0: no bound, -1: no cache)")

		gossipAddr  = flag.String("gossip-addr", "", "gossip (memberlist) address (default with -join or -bootstrap-expect: the API port + 2)")
		join        = flag.String("join", "", "comma-separated gossip addresses of coordinators to join")
		expect      = flag.Int("bootstrap-expect", 0, "fresh coordinators wait for this many to see each other, then form a cluster")
		keyFile     = flag.String("gossip-key-file", "", "file holding a base64 gossip encryption key of 16, 24 or 32 bytes (or set MONTAGE_GOSSIP_KEY)")
		deadCleanup = flag.Duration("dead-server-cleanup", 5*time.Minute, "remove a coordinator dead this long from raft (never below quorum)")
		opTokFile   = flag.String("operator-token-file", "", "file holding the operator token (or set MONTAGE_OPERATOR_TOKEN)")
		joinTokFile = flag.String("agent-join-token-file", "", "file holding the agent join token (or set MONTAGE_AGENT_JOIN_TOKEN)")
		tlsCert     = flag.String("tls-cert", "", "PEM certificate: serve the API over HTTPS and raft over mutual TLS")
		tlsKey      = flag.String("tls-key", "", "PEM private key of -tls-cert")
		tlsCA       = flag.String("tls-ca", "", "PEM CA that signed every coordinator's certificate (raft peers and forwarding are verified against it)")
		configFile  = flag.String("config", "", "YAML file of flag settings (keys are flag names; retry_join lists addresses to join)")
	)
	flag.Parse()
	if *configFile != "" {
		if err := config.Apply(flag.CommandLine, *configFile); err != nil {
			return err
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)

	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	if *dev {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("-dev has no authentication and listens on loopback only; -listen %q is not a loopback address", *listen)
		}
		if *dataDir == "" {
			d, err := os.MkdirTemp("", "montage-dev-")
			if err != nil {
				return fmt.Errorf("temporary data dir: %w", err)
			}
			// A throwaway farm cleans up after a clean exit; pass -data-dir
			// to keep state across restarts.
			defer os.RemoveAll(d)
			*dataDir = d
		}
	}
	if *dataDir == "" {
		return errors.New("-data-dir is required (or use -dev for a throwaway single-node farm)")
	}
	p, _ := strconv.Atoi(port)
	if *raftAddr == "" {
		*raftAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	// Peers need an address they can dial: with -listen 0.0.0.0:… the raft
	// and gossip addresses others use take the host of -advertise.
	peerHost := host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && *advertise != "" {
		if u, err := url.Parse(*advertise); err == nil && u.Hostname() != "" {
			peerHost = u.Hostname()
		}
	}
	rh, rp, err := net.SplitHostPort(*raftAddr)
	if err != nil {
		return fmt.Errorf("-raft-addr %q: %w", *raftAddr, err)
	}
	raftAdvertise := *raftAddr
	if ip := net.ParseIP(rh); ip != nil && ip.IsUnspecified() {
		raftAdvertise = net.JoinHostPort(peerHost, rp)
	}
	var joinAddrs []string
	for _, a := range strings.Split(*join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			joinAddrs = append(joinAddrs, a)
		}
	}
	clustered := len(joinAddrs) > 0 || *expect > 1 || *gossipAddr != ""
	if clustered && *gossipAddr == "" {
		*gossipAddr = net.JoinHostPort(host, strconv.Itoa(p+2))
	}
	if clustered && *dev {
		return errors.New("-dev is a single-node farm; drop -join/-bootstrap-expect/-gossip-addr, or drop -dev")
	}
	if clustered && *s3Endpoint == "" {
		return errors.New("a cluster of coordinators needs the S3 object store (-s3-endpoint): the local store is a directory on one machine, which the other coordinators and their agents cannot read")
	}
	gossipKey, err := loadGossipKey(*keyFile)
	if err != nil {
		return err
	}
	tokens, err := auth.Load(*opTokFile, *joinTokFile)
	if err != nil {
		return err
	}
	if *dev && !tokens.Open() {
		return errors.New("-dev runs open on loopback; drop the tokens or drop -dev")
	}
	tlsFiles := tlsconf.Files{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA}
	if *advertise == "" {
		scheme := "http://"
		if tlsFiles.Enabled() {
			scheme = "https://"
		}
		*advertise = scheme + *listen
	}

	// The object store first: a misconfiguration stops us with one line
	// before anything else starts.
	if *partSize < 5<<20 {
		return fmt.Errorf("-part-size %d: S3 needs parts of at least 5 MiB (5242880 bytes)", *partSize)
	}
	if *retain < 0 {
		return fmt.Errorf("-retention %s: must not be negative (0 keeps jobs forever)", *retain)
	}
	clk := clock.Real{}
	mux := http.NewServeMux()
	var store blob.Store
	if *s3Endpoint != "" {
		cfg := blob.S3Config{Endpoint: *s3Endpoint, Bucket: *s3Bucket, Region: *s3Region, TLS: *s3TLS}
		if err := cfg.LoadCredentials(*s3CredsFile); err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s3, err := blob.NewS3(sctx, cfg)
		cancel()
		if err != nil {
			return err
		}
		log.Info("object store: S3", "store", s3.String())
		store = s3
	} else {
		local, err := blob.NewLocal(filepath.Join(*dataDir, "objects"), *advertise, clk)
		if err != nil {
			return err
		}
		mux.Handle(blob.PathPrefix, local)
		log.Info("object store: local directory", "dir", filepath.Join(*dataDir, "objects"))
		store = local
	}
	// Bind the API first: a busy port should fail before raft starts.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	defer ln.Close()
	var apiTLS, raftTLS, raftClient, peerTLS *tls.Config
	if tlsFiles.Enabled() {
		if apiTLS, err = tlsFiles.Server(); err != nil {
			return err
		}
		if raftTLS, raftClient, err = tlsFiles.Mutual(); err != nil {
			return err
		}
		if peerTLS, err = tlsconf.Client(*tlsCA, false); err != nil {
			return err
		}
		ln = tls.NewListener(ln, apiTLS)
	}
	node, err := cluster.Open(cluster.Config{
		RaftTLS: raftTLS, RaftTLSClient: raftClient,
		DataDir: *dataDir, NodeID: *nodeID, RaftAddr: *raftAddr, RaftAdvertise: raftAdvertise, GossipAdvertise: peerHost, Fast: *dev || os.Getenv("MONTAGE_FAST_RAFT") == "1",
		// A lone coordinator forms a cluster of one; joiners wait to be added.
		Bootstrap: len(joinAddrs) == 0, BootstrapExpect: *expect,
		APIAddr: *advertise, Gossip: *gossipAddr, Join: joinAddrs, GossipKey: gossipKey, DeadCleanup: *deadCleanup,
	})
	if err != nil {
		ln.Close()
		return err
	}
	defer node.Shutdown()

	srv := api.New(node, store, clk, api.Config{
		LeaseTTL: *leaseTTL, MaxAttempts: *maxAttempts,
		MultipartThreshold: *multipart, PartSize: *partSize,
		Retention: *retain, PurgeDelay: *purgeDelay, JanitorInterval: *janitorEvery, CacheBudget: *cacheBudget, Tokens: tokens, PeerTLS: peerTLS,
	}, log)
	srv.Mount(mux)
	// Ready means this node leads and has replayed its log, so reads are current.
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if node.IsLeader() && !node.Ready() || !node.IsLeader() && node.LeaderAPI() == "" {
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
	if clustered {
		wait = node.WaitLeaderKnown
	}
	if err := wait(30 * time.Second); err != nil {
		log.Warn("no leader yet; calls get Unavailable until an election completes", "err", err)
	}
	log.Info("coordinator ready", "api", *advertise, "raft", *raftAddr, "data_dir", *dataDir, "dev", *dev, "tokens", !tokens.Open())
	if ip := net.ParseIP(host); tokens.Open() && !*dev && (ip == nil || !ip.IsLoopback()) {
		log.Warn("the API is open to anyone who can reach " + *listen + ": set MONTAGE_OPERATOR_TOKEN and MONTAGE_AGENT_JOIN_TOKEN (or the -…-token-file flags)")
	}

	agentDone := make(chan struct{})
	if *dev && *devAgent {
		// -dev is for one PC: sources on its own loopback (the samples of
		// `make demo`) are allowed; every other egress rule stays.
		loopback, _ := egress.ParseCIDRs("127.0.0.0/8,::1")
		a, err := worker.New(ctx, worker.Config{
			Coordinator: *advertise, DataDir: filepath.Join(*dataDir, "agent"), Name: "embedded", Slots: *agentSlots,
			Log: log.With("component", "agent"), SourceClient: egress.Client(egress.Policy{Allow: loopback}, nil),
		})
		if err != nil {
			return fmt.Errorf("embedded agent: %w", err)
		}
		go func() {
			defer close(agentDone)
			if err := a.Run(ctx); err != nil {
				errCh <- fmt.Errorf("embedded agent: %w", err)
			}
		}()
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
