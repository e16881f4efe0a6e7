// Package worker is the agent's lease loop: register, long-poll for leases,
// run each with ffmpeg, renew leases with progress, report results, and hand
// work back on shutdown.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/agent/disk"
	"github.com/stream-montages/montage/agent/egress"
	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/sources"
	"github.com/stream-montages/montage/agent/transcribe"
	"github.com/stream-montages/montage/internal/spec"
	"github.com/stream-montages/montage/internal/version"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// Config says where the agent works and whom it works for.
type Config struct {
	// Coordinator is one or more base URLs, comma-separated, e.g.
	// http://10.0.0.1:7400,http://10.0.0.2:7400; the agent learns the rest.
	Coordinator string
	DataDir     string
	Name        string
	Slots       int
	Labels      map[string]string
	// HTTPClient calls the coordinators (verified against the farm's CA).
	HTTPClient *http.Client
	// ObjectClient transfers presigned objects (S3, or the coordinator's
	// local store); default HTTPClient.
	ObjectClient *http.Client
	// SourceClient fetches sources: system roots, and a dialer that enforces
	// the egress policy; default one that allows only public addresses.
	SourceClient *http.Client
	Log          *slog.Logger
	// PollWait is how long one LeaseTask call waits for work.
	PollWait time.Duration
	// JoinToken lets the agent register when the cluster uses tokens.
	JoinToken string
	// EnrollToken is a one-time token (montagectl agent enroll) the agent
	// registers with once instead of the join token; afterwards its own
	// credential (in the data dir) is enough.
	EnrollToken string
	// GPUSessions caps concurrent hardware encodes (consumer NVIDIA cards
	// allow only a few sessions); 0 means 2.
	GPUSessions int
	// Hardware "none" skips proving hardware encoders; the agent then
	// offers software encoders only.
	Hardware string
	// YTDLP is yt-dlp's path: empty finds it on PATH, "off" disables it.
	YTDLP string
	// FontFile draws titles; empty finds a sans font on the system.
	FontFile string
	// Threads caps the CPUs each ffmpeg may use (0: all of them).
	Threads int
	// Pause says whether to take no new work now, and why (someone uses
	// the PC, it runs on battery); nil never pauses.
	Pause func() (bool, string)
	// Transcriber transcribes highlights (nil: this agent does not).
	Transcriber *transcribe.Client
	// MetricsAddr is where the agent serves /metrics (host:port), told to
	// the coordinators for service discovery; empty when it does not.
	MetricsAddr string
}

// Agent runs leased tasks.
type Agent struct {
	cfg    Config
	id     string
	secret string // proves the agent is id; only its hash leaves the PC at rest
	tools  media.Tools
	// reprove, when the encoders came from a kept proof, proves them again
	// (Run starts it after registering).
	reprove func(ctx context.Context)
	// caps is what the agent proved; a background re-proof may replace it.
	caps   atomic.Pointer[montagev1.AgentCapabilities]
	ytdlp  sources.YTDLP
	font   string
	proxy  *sources.RangeProxy
	client montagev1connect.AgentServiceClient
	http   *http.Client
	eps    *endpoints
	log    *slog.Logger
	stats  *stats
	tr     *transcribe.Client // guarded by mu
	// spool keeps rendered segments for their concat (see spool).
	spool *spool

	mu         sync.Mutex
	credential string // from Register; sent on every later call
	running    map[string]*running
	paused     string        // why the agent takes no new work now (empty: it does)
	slotCh     chan struct{} // signalled when a slot frees
	hbWake     chan struct{} // signalled when new leases start
	ttl        time.Duration
}

type running struct {
	lease    *montagev1.Lease
	cancel   context.CancelCauseFunc
	progress float64
}

var errRevoked = errors.New("lease revoked by the coordinator")

// errNoRoom: the disk cannot hold the task; it goes back without using an
// attempt, and the agent's next poll says how much room it has.
var errNoRoom = errors.New("not enough free disk")

// checkDisk refuses a lease that would fill the PC's disk.
func (a *Agent) checkDisk(l *montagev1.Lease) error {
	need := l.GetExpectedBytes()
	if need <= 0 {
		return nil
	}
	avail, err := disk.Available(a.cfg.DataDir)
	if err == nil && avail < need && a.spool.held() > 0 {
		a.spool.free() // kept segments only save a concat some work
		avail, err = disk.Available(a.cfg.DataDir)
	}
	if err != nil || avail >= need {
		return nil // unknown: the coordinator's check used our last report
	}
	return fmt.Errorf("%w: agent %s has %.1f GB free in %s (after a %d GB reserve), the task needs about %.1f GB",
		errNoRoom, a.id, float64(avail)/1e9, a.cfg.DataDir, disk.Reserve>>30, float64(need)/1e9)
}

// errStale matches the coordinator's refusal of a superseded lease token.
var errStale = errors.New("stale lease token")
var errShutdown = errors.New("agent shutting down")

// New prepares an agent: it loads (or creates) its persistent id and proves
// that ffmpeg and ffprobe run.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Coordinator == "" {
		return nil, errors.New("coordinator address is required (-coordinator http://HOST:PORT)")
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.PollWait == 0 {
		cfg.PollWait = 20 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.ObjectClient == nil {
		cfg.ObjectClient = cfg.HTTPClient
	}
	if cfg.SourceClient == nil {
		cfg.SourceClient = egress.Client(egress.Policy{}, nil)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("agent data dir %s: %w", cfg.DataDir, err)
	}
	id, err := loadID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	secret, err := loadSecret(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	tools, err := media.FindTools()
	if err != nil {
		return nil, err
	}
	tools.Threads = cfg.Threads
	ffv, err := media.Version(ctx, tools.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("ffmpeg does not run: %w", err)
	}
	fpv, err := media.Version(ctx, tools.FFprobe)
	if err != nil {
		return nil, fmt.Errorf("ffprobe does not run: %w", err)
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = h
	}
	if cfg.GPUSessions <= 0 {
		cfg.GPUSessions = 2
	}
	caps := &montagev1.AgentCapabilities{FfmpegVersion: ffv, FfprobeVersion: fpv, Os: runtime.GOOS, Arch: runtime.GOARCH, Cpu: cpuName()}
	// Encoders are proven by a real test encode each: a listed NVENC
	// encoder says nothing about whether this machine has a GPU that can
	// run it (a datacenter H100 has none).
	candidates := media.Candidates()
	if cfg.Hardware == "none" {
		candidates = candidates[:3]
	}
	// A proof kept from the last start (same ffmpeg, GPU, devices) lets a
	// restarted agent register at once; Run proves again in the background.
	gpu := media.GPUName(ctx)
	proofPath := filepath.Join(cfg.DataDir, proofFile)
	proofKey := media.ProofKey(tools.FFmpeg, ffv, gpu, media.Devices(), candidates)
	cached, fromCache := media.LoadProof(proofPath, proofKey)
	if fromCache && slices.Contains(cached, "libx264") {
		caps.Encoders = cached
		cfg.Log.Info("encoders from the proof kept at the last start; proving them again in the background", "encoders", cached)
	} else {
		fromCache = false
		began := time.Now()
		caps.Encoders = tools.ProveEncoders(ctx, candidates)
		cfg.Log.Info("encoders proven by test encodes", "encoders", caps.Encoders, "took", time.Since(began).Round(time.Millisecond))
		if err := media.SaveProof(proofPath, media.Proof{Key: proofKey, Encoders: caps.Encoders, ProvedAt: time.Now().UTC()}); err != nil {
			cfg.Log.Warn("cannot keep the encoder proof; the next start proves again", "err", err)
		}
	}
	if !slices.Contains(caps.Encoders, "libx264") {
		return nil, fmt.Errorf("ffmpeg cannot encode H.264 with libx264 here; install a full ffmpeg (Debian/Ubuntu: sudo apt-get install -y ffmpeg)")
	}
	caps.Hwaccels = media.Families(caps.Encoders)
	if len(caps.Hwaccels) > 0 {
		caps.GpuSessions = int32(cfg.GPUSessions)
	}
	caps.GpuName = gpu
	if cfg.Transcriber != nil {
		caps.TranscribeModel = cfg.Transcriber.Model()
	}
	var yt sources.YTDLP
	switch cfg.YTDLP {
	case "off":
	case "":
		if y, ok := sources.Find(); ok {
			yt = y
		}
	default:
		yt = sources.YTDLP{Path: cfg.YTDLP}
	}
	if yt.Path != "" {
		caps.YtdlpVersion = yt.Version(ctx)
		if caps.YtdlpVersion == "" {
			yt = sources.YTDLP{}
		}
	}
	font := media.FindFont(ctx, cfg.FontFile)
	caps.Drawtext = font != ""
	caps.BurnSubtitles = font != "" && tools.HasFilter(ctx, "subtitles")
	a := &Agent{
		cfg:     cfg,
		id:      id,
		secret:  secret,
		tools:   tools,
		ytdlp:   yt,
		font:    font,
		http:    cfg.ObjectClient,
		log:     cfg.Log.With("agent", id),
		running: map[string]*running{},
		slotCh:  make(chan struct{}, 1),
		hbWake:  make(chan struct{}, 1),
		ttl:     15 * time.Second,
		tr:      cfg.Transcriber,
	}
	a.caps.Store(caps)
	if a.spool, err = newSpool(context.WithoutCancel(ctx), filepath.Join(cfg.DataDir, "spool"), tools, a.log); err != nil {
		return nil, err
	}
	if fromCache {
		a.reprove = func(ctx context.Context) { a.proveAgain(ctx, candidates, proofPath, proofKey) }
	}
	if a.proxy, err = sources.StartRangeProxy(cfg.SourceClient); err != nil {
		return nil, err
	}
	next := cfg.HTTPClient.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	eps, err := newEndpoints(strings.Split(cfg.Coordinator, ","), next)
	if err != nil {
		return nil, err
	}
	a.eps = eps
	a.stats = newStats(a)
	a.client = montagev1connect.NewAgentServiceClient(&http.Client{Transport: eps}, "http://"+placeholder,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(a.authorize)))
	return a, nil
}

var errBadCoordinator = errors.New("want http(s)://HOST:PORT")

// authorize sends the join token with Register and the agent's own
// credential with everything else.
func (a *Agent) authorize(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		tok := a.cfg.JoinToken
		if req.Spec().Procedure != "/montage.v1.AgentService/Register" {
			a.mu.Lock()
			tok = a.credential
			a.mu.Unlock()
		} else if tok == "" {
			// Registered before (enrolled, or on an open farm): its own
			// credential proves who it is.
			tok = a.id + "." + a.secret
		}
		if tok != "" {
			req.Header().Set("Authorization", "Bearer "+tok)
		}
		resp, err := next(ctx, req)
		if err == nil {
			a.stats.contact()
		}
		return resp, err
	}
}

// enrolledFile marks, in the data dir, that the agent spent its
// enrolment token.
const enrolledFile = "enrolled"

// enrollToken is the one-time token to register with: none once spent.
func (a *Agent) enrollToken() string {
	if a.cfg.EnrollToken == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(a.cfg.DataDir, enrolledFile)); err == nil {
		return ""
	}
	return a.cfg.EnrollToken
}

// ID is the agent's persistent id.
func (a *Agent) ID() string { return a.id }

func loadID(dir string) (string, error) {
	p := filepath.Join(dir, "agent-id")
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read agent id: %w", err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := "a" + hex.EncodeToString(b)
	if err := os.WriteFile(p, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("write agent id: %w", err)
	}
	return id, nil
}

// loadSecret reads the agent's credential secret, making it at the first
// start: readable by the agent's user only.
func loadSecret(dir string) (string, error) {
	p := filepath.Join(dir, "credential")
	if b, err := os.ReadFile(p); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read agent credential: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write agent credential: %w", err)
	}
	return secret, nil
}

// Run works until ctx ends, then hands back what it holds.
func (a *Agent) Run(ctx context.Context) error {
	defer a.proxy.Close()
	if err := a.register(ctx); err != nil {
		return err
	}
	if a.reprove != nil {
		go a.reprove(ctx)
	}
	hbCtx, stopHB := context.WithCancel(context.Background())
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); a.heartbeatLoop(hbCtx) }()
	var wg sync.WaitGroup
	var runErr error
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if a.cfg.Pause != nil {
			paused, why := a.cfg.Pause()
			a.mu.Lock()
			changed := why != a.paused
			a.paused = why
			a.mu.Unlock()
			if changed && paused {
				a.log.Info("taking no new work", "why", why, "running", a.busy())
			} else if changed {
				a.log.Info("taking work again")
			}
			if paused {
				// The poll that reports it keeps the coordinator informed.
				a.reportPaused(ctx)
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
				continue
			}
		}
		free, gpuFree := a.cfg.Slots-a.busy(), a.freeGPU()
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-a.slotCh:
			}
			continue
		}
		callCtx, cancel := context.WithTimeout(ctx, a.cfg.PollWait+10*time.Second)
		resp, err := a.client.LeaseTask(callCtx, connect.NewRequest(&montagev1.LeaseTaskRequest{
			AgentId: a.id, FreeSlots: int32(free), FreeGpuSessions: int32(gpuFree), WaitSeconds: a.cfg.PollWait.Seconds(),
			Held: a.held(), HeldListed: true, FreeDiskBytes: a.freeDisk(), Status: a.status(), KeptJobs: a.spool.keptJobs(),
		}))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if c := connect.CodeOf(err); c == connect.CodeNotFound || c == connect.CodeUnauthenticated {
				// The coordinator lost us (fresh cluster) or the join token
				// changed: register again.
				if rerr := a.register(ctx); rerr != nil {
					runErr = rerr
					break
				}
			}
			a.log.Warn("lease request failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		for _, l := range resp.Msg.GetLeases() {
			if a.holds(l) {
				continue // already running (see holds)
			}
			if l.GetTtlSeconds() > 0 {
				a.mu.Lock()
				a.ttl = time.Duration(l.GetTtlSeconds() * float64(time.Second))
				a.mu.Unlock()
			}
			tctx, tcancel := context.WithCancelCause(context.Background())
			r := &running{lease: l, cancel: tcancel}
			a.mu.Lock()
			a.running[l.GetTaskId()] = r
			a.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.execute(tctx, r)
			}()
		}
		if len(resp.Msg.GetLeases()) > 0 {
			select {
			case a.hbWake <- struct{}{}:
			default:
			}
		}
	}
	// Shutdown: stop ffmpeg and hand every lease back so others take it now
	// rather than after the lease expires.
	a.mu.Lock()
	for _, r := range a.running {
		r.cancel(errShutdown)
	}
	a.mu.Unlock()
	wg.Wait()
	a.spool.free()
	stopHB()
	<-hbDone
	return runErr
}

// freeDisk is what the agent can still promise to write: the data dir's
// room less what running tasks are expected to use (0: unknown).
func (a *Agent) freeDisk() int64 {
	avail, err := disk.Available(a.cfg.DataDir)
	if err != nil {
		a.log.Warn("free disk unknown", "err", err)
		return 0
	}
	avail += a.spool.held() // freed when a task needs it
	a.mu.Lock()
	for _, r := range a.running {
		avail -= r.lease.GetExpectedBytes()
	}
	a.mu.Unlock()
	return max(1, avail) // 1: room for nothing, rather than "unknown"
}

// held lists the leases the agent runs now, so the coordinator can send
// again a grant whose response was lost.
func (a *Agent) held() []*montagev1.LeaseProgress {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*montagev1.LeaseProgress, 0, len(a.running))
	for id, r := range a.running {
		out = append(out, &montagev1.LeaseProgress{TaskId: id, Token: r.lease.GetToken(), Progress: r.progress})
	}
	return out
}

// holds reports whether the agent runs l's task already, under any token:
// a second run of one task would share its work directory and its entry
// here. A newer grant of a task still running under an older one waits
// until the heartbeat's revocation ends the old run; it is then sent again.
func (a *Agent) holds(l *montagev1.Lease) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running[l.GetTaskId()] != nil
}

// freeGPU is how many more hardware encodes the agent may start.
func (a *Agent) freeGPU() int {
	if len(a.caps.Load().GetHwaccels()) == 0 {
		return 0
	}
	return max(0, a.cfg.GPUSessions-a.gpuBusy())
}

// gpuBusy is how many hardware encodes run now.
func (a *Agent) gpuBusy() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	used := 0
	for _, r := range a.running {
		if r.lease.GetType() == montagev1.TaskType_TASK_TYPE_RENDER && spec.EncoderFamily(r.lease.GetProfile().GetEncoder()) != "" {
			used++
		}
	}
	return used
}

// busy is how many slots the running tasks fill: a keyframe cut's render
// fills a third of one (see slotThirds).
func (a *Agent) busy() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	thirds := 0
	for _, r := range a.running {
		thirds += slotThirds(r.lease)
	}
	return thirds / 3
}

// slotThirds is the share of a slot a task fills, in thirds. A keyframe
// cut's render copies the video and cuts the audio: it mostly waits on
// reads and writes and uses a fraction of one core, so three share a slot
// (a slot is sized for an encode, which uses every core it is given).
func slotThirds(l *montagev1.Lease) int {
	if l.GetType() == montagev1.TaskType_TASK_TYPE_RENDER && l.GetProfile().GetCut() == spec.CutKeyframe {
		return 1
	}
	return 3
}

func (a *Agent) register(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		enroll := a.enrollToken()
		caps := proto.CloneOf(a.caps.Load())
		if a.transcriber() == nil {
			caps.TranscribeModel = "" // the service refused its key
		}
		resp, err := a.client.Register(ctx, connect.NewRequest(&montagev1.RegisterRequest{
			AgentId: a.id, Name: a.cfg.Name, Capabilities: caps, Slots: int32(a.cfg.Slots), Labels: a.cfg.Labels,
			Credential: a.secret, MetricsAddr: a.metricsAddr(), EnrollToken: enroll,
			Version: version.Version, Protocol: version.Protocol, TimeZone: localZone(),
		}))
		if err == nil && enroll != "" {
			if werr := os.WriteFile(filepath.Join(a.cfg.DataDir, enrolledFile), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); werr != nil {
				a.log.Warn("enrolled, but could not note it in the data dir; the next start sends the spent token again", "err", werr)
			}
			a.log.Info("enrolled with a one-time token; the agent's own credential is used from now on")
		}
		if err == nil {
			_ = a.eps.add(resp.Msg.GetCoordinators())
			a.mu.Lock()
			a.credential = resp.Msg.GetAgentCredential()
			a.mu.Unlock()
			a.log.Info("registered", "coordinators", a.eps.list(), "slots", a.cfg.Slots,
				"encoders", a.caps.Load().GetEncoders(), "gpu", a.caps.Load().GetGpuName(), "yt_dlp", a.caps.Load().GetYtdlpVersion(), "font", a.font)
			return nil
		}
		if c := connect.CodeOf(err); c == connect.CodeInvalidArgument || c == connect.CodePermissionDenied || c == connect.CodeUnauthenticated {
			return fmt.Errorf("register with %s: %w", a.cfg.Coordinator, err)
		}
		a.log.Warn("register failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// heartbeatLoop renews all running leases every third of their TTL. New
// leases may carry a shorter TTL than the one the loop was sleeping on, so
// they bring the next heartbeat forward (never back).
func (a *Agent) heartbeatLoop(ctx context.Context) {
	// At most every 2 s even with long TTLs: renewals stay out of raft and
	// cost little, and they carry the progress people watch.
	period := func() time.Duration {
		a.mu.Lock()
		defer a.mu.Unlock()
		return min(a.ttl/3, 2*time.Second)
	}
	next := time.Now().Add(period())
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.hbWake:
			if n := time.Now().Add(period()); n.Before(next) {
				next = n
			}
			continue
		case <-time.After(time.Until(next)):
		}
		a.heartbeat(ctx)
		next = time.Now().Add(period())
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	a.mu.Lock()
	req := &montagev1.HeartbeatRequest{AgentId: a.id}
	for id, r := range a.running {
		req.Leases = append(req.Leases, &montagev1.LeaseProgress{TaskId: id, Token: r.lease.GetToken(), Progress: r.progress})
	}
	a.mu.Unlock()
	if len(req.Leases) == 0 {
		return
	}
	req.Status = a.status()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.client.Heartbeat(cctx, connect.NewRequest(req))
	if err != nil {
		a.log.Warn("heartbeat failed", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range resp.Msg.GetRevokedTaskIds() {
		if r := a.running[id]; r != nil {
			a.log.Info("lease revoked; stopping task", "task", id)
			r.cancel(errRevoked)
		}
	}
}

// report sends a completion or failure, retrying while the coordinator is
// unreachable or restarting: the lease token makes a repeated report
// harmless, and giving up would throw away finished work.
func (a *Agent) report(ctx context.Context, send func(context.Context) error) error {
	wait := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := send(cctx)
		cancel()
		c := connect.CodeOf(err)
		if err == nil || (c != connect.CodeUnavailable && c != connect.CodeDeadlineExceeded) {
			if c == connect.CodeFailedPrecondition && strings.Contains(err.Error(), errStale.Error()) {
				return fmt.Errorf("%w: %v", errStale, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 3*time.Second)
	}
}

func (a *Agent) setProgress(taskID string, p float64) {
	a.mu.Lock()
	if r := a.running[taskID]; r != nil {
		r.progress = p
	}
	a.mu.Unlock()
}

// execute runs one lease and reports how it ended.
func (a *Agent) execute(ctx context.Context, r *running) {
	l := r.lease
	log := a.log.With("task", l.GetTaskId(), "token", l.GetToken(), "attempt", l.GetAttempt())
	defer func() {
		a.mu.Lock()
		delete(a.running, l.GetTaskId())
		a.mu.Unlock()
		select {
		case a.slotCh <- struct{}{}:
		default:
		}
	}()
	log.Info("task started", "type", l.GetType().String())
	defer a.spool.unstage(l.GetTaskId()) // kept only once committed
	start := time.Now()
	var res *montagev1.TaskResult
	err := a.checkDisk(l)
	if err == nil {
		res, err = a.runTask(ctx, l, func(p float64) { a.setProgress(l.GetTaskId(), p) })
	}
	// Reports use a fresh context (the task's own may be canceled already),
	// long enough to outlast a coordinator restart, except when shutting
	// down: then the lease may as well expire than hold up the exit.
	budget := 2 * time.Minute
	if errors.Is(context.Cause(ctx), errShutdown) {
		budget = 5 * time.Second
	}
	rctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	switch {
	case err == nil:
		err = a.report(rctx, func(ctx context.Context) error {
			_, err := a.client.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{
				AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Result: res, Kept: a.spool.isStaged(l.GetTaskId()),
			}))
			return err
		})
		if err != nil {
			log.Warn("completion refused", "err", err)
			if connect.CodeOf(err) != connect.CodeFailedPrecondition || errors.Is(err, errStale) {
				return
			}
			// The coordinator refused the object itself (checksum or size):
			// give the attempt back as failed so it is retried now.
			a.stats.ended(l.GetType(), "failed", time.Since(start))
			err = fmt.Errorf("result refused: %w", err)
			_ = a.report(rctx, func(ctx context.Context) error {
				_, ferr := a.client.FailTask(ctx, connect.NewRequest(&montagev1.FailTaskRequest{
					AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Error: err.Error(),
				}))
				return ferr
			})
			return
		}
		a.spool.keep(l.GetTaskId())
		a.stats.ended(l.GetType(), "succeeded", time.Since(start))
		log.Info("task done", "seconds", time.Since(start).Seconds(), "bytes", res.GetSize())
	case errors.Is(err, errReused):
		a.stats.ended(l.GetType(), "cached", time.Since(start))
		log.Info("task done from the cache: source unchanged", "seconds", time.Since(start).Seconds())
	case errors.Is(context.Cause(ctx), errRevoked):
		a.stats.ended(l.GetType(), "revoked", time.Since(start))
		log.Info("task stopped: lease revoked")
	default:
		handback := errors.Is(context.Cause(ctx), errShutdown) || errors.Is(err, errNoRoom) || errors.Is(err, errNoTranscriber)
		msg := err.Error()
		if errors.Is(context.Cause(ctx), errShutdown) {
			msg = "agent shut down; work handed back"
		}
		ferr := a.report(rctx, func(ctx context.Context) error {
			_, err := a.client.FailTask(ctx, connect.NewRequest(&montagev1.FailTaskRequest{
				AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Error: msg, Handback: handback, Final: errors.Is(err, errFinal),
			}))
			return err
		})
		if ferr != nil {
			log.Warn("failure report refused", "err", ferr)
		}
		outcome := "failed"
		if handback {
			outcome = "handed_back"
		}
		a.stats.ended(l.GetType(), outcome, time.Since(start))
		log.Warn("task failed", "err", msg, "handback", handback)
	}
}

// proofFile keeps the encoder proof in the data directory.
const proofFile = "encoder-proof.json"

// proveAgain runs the test encodes behind a kept proof; if the machine
// changed in a way the key did not see (a driver update, say), the agent
// registers again with what works now.
func (a *Agent) proveAgain(ctx context.Context, candidates []string, path, key string) {
	began := time.Now()
	enc := a.tools.ProveEncoders(ctx, candidates)
	if ctx.Err() != nil || !slices.Contains(enc, "libx264") {
		return
	}
	if err := media.SaveProof(path, media.Proof{Key: key, Encoders: enc, ProvedAt: time.Now().UTC()}); err != nil {
		a.log.Warn("cannot keep the encoder proof", "err", err)
	}
	old := a.caps.Load()
	if slices.Equal(enc, old.GetEncoders()) {
		a.log.Info("encoder proof confirmed", "encoders", enc, "took", time.Since(began).Round(time.Millisecond))
		return
	}
	caps := proto.CloneOf(old)
	caps.Encoders, caps.Hwaccels = enc, media.Families(enc)
	caps.GpuSessions = 0
	if len(caps.Hwaccels) > 0 {
		caps.GpuSessions = int32(a.cfg.GPUSessions)
	}
	a.caps.Store(caps)
	a.log.Warn("the encoders changed since the kept proof; registering again", "was", old.GetEncoders(), "now", enc)
	if err := a.register(ctx); err != nil {
		a.log.Warn("register with the new encoders", "err", err)
	}
}
