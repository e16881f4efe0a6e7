// Command montage-agent runs render tasks leased from a coordinator.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kardianos/service"

	"github.com/stream-montages/montage/agent/busy"
	"github.com/stream-montages/montage/agent/egress"
	"github.com/stream-montages/montage/agent/transcribe"
	"github.com/stream-montages/montage/agent/worker"
	"github.com/stream-montages/montage/internal/flagfile"
	"github.com/stream-montages/montage/internal/tlsconf"
	"github.com/stream-montages/montage/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "montage-agent:", err)
		os.Exit(1)
	}
}

const usage = `montage-agent renders montage segments for a Stream Montages farm.

  montage-agent [run] [flags]       run in the foreground (what the service runs)
  montage-agent install [flags]     install as a system service with these flags in its config file, and start it
                                    (-dry-run prints the config and the service definition instead; -os all for every platform)
  montage-agent uninstall|start|stop|status
  montage-agent -version

Flags:
`

// options are the agent's flags; the config file (-config) may set any of them.
type options struct {
	coord, dataDir, name, labels, logLevel, joinFile, enroll, tlsCA, sourceCA, allowSrc string
	hardware, ytdlp, font, metrics, metricsA, config                                    string
	slots, gpuSess, threads                                                             int
	busyCPU                                                                             float64
	busyCool                                                                            time.Duration
	battery                                                                             bool
	openaiKeyFile, openaiBase, openaiModel                                              string
	skipTLS, denyPriv, version                                                          bool
	pollWait                                                                            time.Duration
}

func agentFlags(fs *flag.FlagSet) *options {
	home, _ := os.UserHomeDir()
	o := &options{}
	fs.StringVar(&o.coord, "coordinator", envOr("MONTAGE_COORDINATOR", "http://127.0.0.1:7400"), "coordinator base URL")
	fs.StringVar(&o.dataDir, "data-dir", filepath.Join(home, ".montage-agent"), "where the agent keeps its id and work files")
	fs.IntVar(&o.slots, "slots", 1, "tasks to run at once")
	fs.StringVar(&o.name, "name", "", "display name (default: hostname)")
	fs.StringVar(&o.labels, "labels", "", "comma-separated key=value labels")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.joinFile, "join-token-file", "", "file holding the agent join token (or set MONTAGE_AGENT_JOIN_TOKEN)")
	fs.StringVar(&o.enroll, "enroll", "", "one-time enrolment token from montagectl agent enroll (spent at the first registration)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA to verify https coordinators (default: the system roots); object URLs trust it too")
	fs.BoolVar(&o.skipTLS, "tls-skip-verify", false, "do not verify the coordinators' and object store's certificates: for tests only; sources are always verified")
	fs.StringVar(&o.sourceCA, "source-ca", "", "PEM CA trusted for sources and object URLs besides the system roots (a private CDN or MinIO)")
	fs.StringVar(&o.allowSrc, "allow-sources", "", "comma-separated CIDR ranges sources may use even if otherwise refused (e.g. 127.0.0.0/8 for media on this PC)")
	fs.BoolVar(&o.denyPriv, "deny-private-sources", false, "refuse sources on private LAN ranges (10/8, 172.16/12, 192.168/16, fc00::/7) too")
	fs.IntVar(&o.threads, "threads", 0, "CPUs each ffmpeg may use (0: all); ffmpeg always runs at the lowest CPU and I/O priority")
	fs.IntVar(&o.gpuSess, "gpu-sessions", 2, "hardware encodes to run at once (consumer NVIDIA cards allow few sessions)")
	fs.StringVar(&o.hardware, "hwaccel", "auto", "auto proves hardware encoders with a test encode at start; none offers software encoders only")
	fs.StringVar(&o.ytdlp, "yt-dlp", "", "path of yt-dlp for page URLs (default: found on PATH; \"off\" disables)")
	fs.StringVar(&o.font, "font", "", "font file for title overlays (default: a sans font found on the system)")
	fs.DurationVar(&o.pollWait, "poll-wait", 20*time.Second, "how long one lease request waits for work before asking again")
	fs.StringVar(&o.metrics, "metrics-listen", "", "serve Prometheus metrics on ADDR (e.g. :9102); off by default")
	fs.StringVar(&o.metricsA, "metrics-advertise", "", "HOST:PORT Prometheus scrapes, told to the coordinators for discovery (default: the -metrics-listen address, its host completed with this PC's address towards the coordinator)")
	fs.Float64Var(&o.busyCPU, "busy-cpu", 50, "take no new work while other programs use more than this percent of the CPU (0: never pause for that)")
	fs.DurationVar(&o.busyCool, "busy-cooldown", 2*time.Minute, "after the PC was busy or on battery, wait this long before taking work again")
	fs.BoolVar(&o.battery, "pause-on-battery", true, "take no new work while the PC runs on battery (Linux)")
	fs.StringVar(&o.openaiKeyFile, "openai-key-file", "", "file holding the transcription service's API key (or set OPENAI_API_KEY); with a key or a base URL the agent transcribes")
	fs.StringVar(&o.openaiBase, "openai-base-url", "", "an OpenAI-compatible transcription server, e.g. http://gpu-pc:8080/v1 for whisper.cpp (or set OPENAI_BASE_URL; default OpenAI)")
	fs.StringVar(&o.openaiModel, "openai-model", "", "transcription model (or set OPENAI_MODEL; default whisper-1)")
	fs.StringVar(&o.config, "config", "", "YAML file of flag settings (keys are flag names); flags given here win")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return o
}

func run(args []string) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("montage-agent "+cmd, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	o := agentFlags(fs)
	var dryRun, noStart bool
	var targetOS string
	if cmd == "install" {
		fs.BoolVar(&dryRun, "dry-run", false, "print the config file and the service definition instead of installing")
		fs.BoolVar(&noStart, "no-start", false, "install without starting the service")
		fs.StringVar(&targetOS, "os", runtime.GOOS, "with -dry-run: the platform to print for (linux, darwin, windows or all)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see montage-agent %s -h)", fs.Arg(0), cmd)
	}
	if o.version {
		fmt.Println("montage-agent", version.String())
		return nil
	}
	switch cmd {
	case "run":
		if o.config != "" {
			if err := flagfile.Apply(fs, o.config, nil); err != nil {
				return err
			}
		}
		return runAgent(o)
	case "install":
		return installService(fs, o, dryRun, noStart, targetOS)
	case "uninstall", "start", "stop", "status":
		return controlService(cmd)
	}
	return fmt.Errorf("unknown command %q (run, install, uninstall, start, stop, status)", cmd)
}

// runAgent runs the agent until SIGINT/SIGTERM, or until the service
// manager stops it.
func runAgent(o *options) error {
	if !service.Interactive() {
		return runAsService(func(ctx context.Context) error { return work(ctx, o) })
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return work(ctx, o)
}

func work(ctx context.Context, o *options) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)
	if o.slots < 1 || o.slots > 64 {
		return fmt.Errorf("-slots %d: must be between 1 and 64", o.slots)
	}
	if o.busyCPU < 0 || o.busyCPU > 100 {
		return fmt.Errorf("-busy-cpu %v: must be a percent between 0 (never) and 100", o.busyCPU)
	}
	if o.threads < 0 || o.threads > 1024 {
		return fmt.Errorf("-threads %d: must be between 0 (all CPUs) and 1024", o.threads)
	}
	lbl := map[string]string{}
	for _, kv := range strings.Split(o.labels, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("-labels: %q is not key=value", kv)
		}
		lbl[k] = v
	}
	join := strings.TrimSpace(os.Getenv("MONTAGE_AGENT_JOIN_TOKEN"))
	if o.joinFile != "" {
		b, err := os.ReadFile(o.joinFile)
		if err != nil {
			return fmt.Errorf("-join-token-file: %w", err)
		}
		join = strings.TrimSpace(string(b))
	}
	allow, err := egress.ParseCIDRs(o.allowSrc)
	if err != nil {
		return fmt.Errorf("-allow-sources: %w", err)
	}
	clients, err := newClients(o.tlsCA, o.sourceCA, o.skipTLS, egress.Policy{Allow: allow, DenyPrivate: o.denyPriv})
	if err != nil {
		return err
	}
	if o.skipTLS {
		log.Warn("-tls-skip-verify: the coordinators' and object store's certificates are not checked; this is for tests only")
	}
	tr, err := transcribe.Configure(o.openaiKeyFile, o.openaiBase, o.openaiModel, nil)
	if err != nil {
		return err
	}
	a, err := worker.New(ctx, worker.Config{Transcriber: tr, Coordinator: o.coord, DataDir: o.dataDir, Name: o.name, Slots: o.slots, Labels: lbl, Log: log,
		JoinToken: join, EnrollToken: strings.TrimSpace(o.enroll), HTTPClient: clients.coordinator, ObjectClient: clients.objects, SourceClient: clients.sources,
		GPUSessions: o.gpuSess, Threads: o.threads, Pause: pauser(o), Hardware: o.hardware, YTDLP: o.ytdlp, FontFile: o.font, PollWait: o.pollWait})
	if err != nil {
		return err
	}
	if o.metrics != "" {
		if err := a.ServeMetrics(ctx, o.metrics, o.metricsA); err != nil {
			return fmt.Errorf("-metrics-listen: %w", err)
		}
	} else if o.metricsA != "" {
		return fmt.Errorf("-metrics-advertise %s: needs -metrics-listen", o.metricsA)
	}
	log.Info("agent starting", "id", a.ID(), "version", version.String(), "coordinator", o.coord, "slots", o.slots)
	return a.Run(ctx)
}

// pauser watches the PC for its owner: other programs' CPU load and the
// battery.
func pauser(o *options) func() (bool, string) {
	if o.busyCPU <= 0 && !o.battery {
		return nil
	}
	m := &busy.Monitor{Pauser: &busy.Pauser{BusyCPU: o.busyCPU, Cooldown: o.busyCool, Battery: o.battery},
		Take: busy.Take, Now: time.Now}
	if runtime.GOOS == "linux" {
		m.Battery = busy.SysfsBattery{Dir: "/sys/class/power_supply"}
	}
	return m.Check
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
