// Command montage-agent runs render tasks leased from a coordinator.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

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
		tlsCA    = flag.String("tls-ca", "", "PEM CA to verify https coordinators and object URLs (default: the system roots)")
		skipTLS  = flag.Bool("tls-skip-verify", false, "do not verify TLS certificates: for tests only, never in production")
		gpuSess  = flag.Int("gpu-sessions", 2, "hardware encodes to run at once (consumer NVIDIA cards allow few sessions)")
		hardware = flag.String("hwaccel", "auto", "auto proves hardware encoders with a test encode at start; none offers software encoders only")
		ytdlp    = flag.String("yt-dlp", "", "path of yt-dlp for page URLs (default: found on PATH; \"off\" disables)")
		font     = flag.String("font", "", "font file for title overlays (default: a sans font found on the system)")
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
	tlsCfg, err := tlsconf.Client(*tlsCA, *skipTLS)
	if err != nil {
		return err
	}
	if *skipTLS {
		log.Warn("-tls-skip-verify: certificates are not checked; this is for tests only")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	a, err := worker.New(ctx, worker.Config{Coordinator: *coord, DataDir: *dataDir, Name: *name, Slots: *slots, Labels: lbl, Log: log,
		JoinToken: join, HTTPClient: &http.Client{Transport: tr}, GPUSessions: *gpuSess, Hardware: *hardware, YTDLP: *ytdlp, FontFile: *font})
	if err != nil {
		return err
	}
	log.Info("agent starting", "id", a.ID(), "coordinator", *coord, "slots", *slots)
	return a.Run(ctx)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
