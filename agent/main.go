// Command montage-agent runs render tasks leased from a coordinator.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stream-montages/montage/agent/egress"
	"github.com/stream-montages/montage/agent/worker"
	"github.com/stream-montages/montage/internal/tlsconf"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "montage-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	home, _ := os.UserHomeDir()
	var (
		coord    = flag.String("coordinator", envOr("MONTAGE_COORDINATOR", "http://127.0.0.1:7400"), "coordinator base URL")
		dataDir  = flag.String("data-dir", filepath.Join(home, ".montage-agent"), "where the agent keeps its id and work files")
		slots    = flag.Int("slots", 1, "tasks to run at once")
		name     = flag.String("name", "", "display name (default: hostname)")
		labels   = flag.String("labels", "", "comma-separated key=value labels")
		logLevel = flag.String("log-level", "info", "debug, info, warn or error")
		joinFile = flag.String("join-token-file", "", "file holding the agent join token (or set MONTAGE_AGENT_JOIN_TOKEN)")
		tlsCA    = flag.String("tls-ca", "", "PEM CA to verify https coordinators (default: the system roots); object URLs trust it too")
		skipTLS  = flag.Bool("tls-skip-verify", false, "do not verify the coordinators' and object store's certificates: for tests only; sources are always verified")
		sourceCA = flag.String("source-ca", "", "PEM CA trusted for sources and object URLs besides the system roots (a private CDN or MinIO)")
		allowSrc = flag.String("allow-sources", "", "comma-separated CIDR ranges sources may use even if otherwise refused (e.g. 127.0.0.0/8 for media on this PC)")
		denyPriv = flag.Bool("deny-private-sources", false, "refuse sources on private LAN ranges (10/8, 172.16/12, 192.168/16, fc00::/7) too")
		gpuSess  = flag.Int("gpu-sessions", 2, "hardware encodes to run at once (consumer NVIDIA cards allow few sessions)")
		hardware = flag.String("hwaccel", "auto", "auto proves hardware encoders with a test encode at start; none offers software encoders only")
		ytdlp    = flag.String("yt-dlp", "", "path of yt-dlp for page URLs (default: found on PATH; \"off\" disables)")
		font     = flag.String("font", "", "font file for title overlays (default: a sans font found on the system)")
		pollWait = flag.Duration("poll-wait", 20*time.Second, "how long one lease request waits for work before asking again")
		metrics  = flag.String("metrics-listen", "", "serve Prometheus metrics on ADDR (e.g. :9102); off by default")
		metricsA = flag.String("metrics-advertise", "", "HOST:PORT Prometheus scrapes, told to the coordinators for discovery (default: the -metrics-listen address, its host completed with this PC's address towards the coordinator)")
	)
	flag.Parse()
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)
	if *slots < 1 || *slots > 64 {
		return fmt.Errorf("-slots %d: must be between 1 and 64", *slots)
	}
	lbl := map[string]string{}
	for _, kv := range strings.Split(*labels, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("-labels: %q is not key=value", kv)
		}
		lbl[k] = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	join := strings.TrimSpace(os.Getenv("MONTAGE_AGENT_JOIN_TOKEN"))
	if *joinFile != "" {
		b, err := os.ReadFile(*joinFile)
		if err != nil {
			return fmt.Errorf("-join-token-file: %w", err)
		}
		join = strings.TrimSpace(string(b))
	}
	allow, err := egress.ParseCIDRs(*allowSrc)
	if err != nil {
		return fmt.Errorf("-allow-sources: %w", err)
	}
	clients, err := newClients(*tlsCA, *sourceCA, *skipTLS, egress.Policy{Allow: allow, DenyPrivate: *denyPriv})
	if err != nil {
		return err
	}
	if *skipTLS {
		log.Warn("-tls-skip-verify: the coordinators' and object store's certificates are not checked; this is for tests only")
	}
	a, err := worker.New(ctx, worker.Config{Coordinator: *coord, DataDir: *dataDir, Name: *name, Slots: *slots, Labels: lbl, Log: log,
		JoinToken: join, HTTPClient: clients.coordinator, ObjectClient: clients.objects, SourceClient: clients.sources,
		GPUSessions: *gpuSess, Hardware: *hardware, YTDLP: *ytdlp, FontFile: *font, PollWait: *pollWait})
	if err != nil {
		return err
	}
	if *metrics != "" {
		if err := a.ServeMetrics(ctx, *metrics, *metricsA); err != nil {
			return fmt.Errorf("-metrics-listen: %w", err)
		}
	} else if *metricsA != "" {
		return fmt.Errorf("-metrics-advertise %s: needs -metrics-listen", *metricsA)
	}
	log.Info("agent starting", "id", a.ID(), "coordinator", *coord, "slots", *slots)
	return a.Run(ctx)
}

type clients struct{ coordinator, objects, sources *http.Client }

// newClients keeps three kinds of traffic apart: coordinator calls trust the
// farm's CA; presigned object URLs (S3 or the coordinator's own store) trust
// the system roots, the farm's CA and -source-ca; sources trust the system
// roots and -source-ca only, are never exempt from verification, and dial
// through the egress policy.
func newClients(farmCA, sourceCA string, skipVerify bool, p egress.Policy) (clients, error) {
	coordTLS, err := tlsconf.Client(farmCA, skipVerify)
	if err != nil {
		return clients{}, fmt.Errorf("-tls-ca: %w", err)
	}
	sourceRoots, err := tlsconf.SystemPool(sourceCA)
	if err != nil {
		return clients{}, fmt.Errorf("-source-ca: %w", err)
	}
	objectRoots, err := tlsconf.SystemPool(sourceCA, farmCA)
	if err != nil {
		return clients{}, err
	}
	coordTr := http.DefaultTransport.(*http.Transport).Clone()
	coordTr.TLSClientConfig = coordTLS
	objTr := http.DefaultTransport.(*http.Transport).Clone()
	objTr.TLSClientConfig = &tls.Config{RootCAs: objectRoots, MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	return clients{
		coordinator: &http.Client{Transport: coordTr},
		objects:     &http.Client{Transport: objTr},
		sources:     egress.Client(p, sourceRoots),
	}, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
