package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stream-montages/montage/internal/flagfile"
)

// Coordinator is everything montage-coordinator is told, from flags and the
// -config file, with the values derived from them (Resolve).
type Coordinator struct {
	Dev      bool
	DevAgent bool
	// Version: print the version and exit.
	Version bool
	// DevAgentMetrics is where -dev's embedded agent serves its metrics.
	DevAgentMetrics string
	AgentSlots      int
	Listen          string
	DataDir         string
	RaftAddr        string
	Advertise       string
	NodeID          string
	LogLevel        string
	ConfigFile      string

	LeaseTTL        time.Duration
	MaxAttempts     int
	BlockAfter      int
	QuarantineAfter int
	AgentGC         time.Duration
	ConcatAffinity  time.Duration
	MaxQueuedJobs   int
	MaxTasksPerJob  int
	InlineConcat    int

	S3Endpoint, S3Bucket, S3Region, S3CredsFile string
	S3TLS                                       bool
	Multipart, PartSize                         int64
	Retention, PurgeDelay, JanitorEvery         time.Duration
	CacheBudget                                 int64

	GossipAddr, Join, GossipKeyFile  string
	BootstrapExpect                  int
	DeadCleanup                      time.Duration
	SnapshotThreshold                uint64
	SnapshotInterval                 time.Duration
	TrailingLogs                     uint64
	OperatorTokenFile, JoinTokenFile string
	ViewerTokenFile                  string
	TLSCert, TLSKey, TLSCA           string
	InsecureNoAuth                   bool

	// Derived by Resolve.
	Host          string   // of Listen
	RaftAdvertise string   // what peers dial for raft
	PeerHost      string   // host peers use for raft and gossip
	JoinAddrs     []string // Join, split
	Clustered     bool     // gossip is on: -join, -bootstrap-expect > 1 or -gossip-addr
}

// Flags registers every coordinator flag on fs, writing into the result.
func Flags(fs *flag.FlagSet) *Coordinator {
	c := &Coordinator{}
	fs.BoolVar(&c.Dev, "dev", false, "single-node farm in one process: temporary data dir, local object store, embedded agent (loopback only)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:7400", "address for the API, object URLs and /metrics")
	fs.StringVar(&c.DataDir, "data-dir", "", "where raft state and objects live (default with -dev: a new temporary directory)")
	fs.StringVar(&c.RaftAddr, "raft-addr", "", "address for raft traffic (default: the API port + 1 on the same host)")
	fs.StringVar(&c.Advertise, "advertise", "", "base URL agents use to reach this coordinator (default: http://LISTEN)")
	fs.StringVar(&c.NodeID, "node-id", "", "raft node id (default: kept in the data dir, created from the hostname)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 15*time.Second, "lease lifetime after each heartbeat")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "attempts per task before its job fails")
	fs.IntVar(&c.BlockAfter, "block-after", 3, "failed attempts of one job after which an agent gets no more of that job")
	fs.IntVar(&c.QuarantineAfter, "quarantine-after", 5, "failed attempts in a row (across jobs) after which an agent is quarantined until `montagectl agent undrain`")
	fs.IntVar(&c.MaxQueuedJobs, "max-queued-jobs", 1000, "unfinished jobs the farm accepts; past it submissions get ResourceExhausted")
	fs.IntVar(&c.MaxTasksPerJob, "max-tasks-per-job", 2500, "tasks one job may plan into (renders, chunks and the concat)")
	fs.IntVar(&c.InlineConcat, "inline-concat-inputs", 256, "inputs a concat lease carries itself; a concat with more reads them from an object")
	fs.DurationVar(&c.AgentGC, "agent-gc", 7*24*time.Hour, "forget agents unseen this long that hold no work (0 keeps them)")
	fs.DurationVar(&c.ConcatAffinity, "concat-affinity", 3*time.Second, "how long a montage's concat waits for an agent that keeps its segments before another agent may take it (0: never waits)")
	fs.BoolVar(&c.DevAgent, "dev-agent", true, "with -dev, run an embedded agent")
	fs.StringVar(&c.DevAgentMetrics, "dev-agent-metrics-listen", "", "with -dev, serve the embedded agent's Prometheus metrics on ADDR (e.g. 127.0.0.1:9102)")
	fs.IntVar(&c.AgentSlots, "agent-slots", 1, "with -dev, slots of the embedded agent")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")

	fs.StringVar(&c.S3Endpoint, "s3-endpoint", "", "S3/MinIO endpoint (host:port or URL); empty keeps objects in the data dir")
	fs.StringVar(&c.S3Bucket, "s3-bucket", "montage", "S3 bucket (created if absent)")
	fs.StringVar(&c.S3Region, "s3-region", "us-east-1", "S3 region")
	fs.BoolVar(&c.S3TLS, "s3-tls", false, "use HTTPS for a host:port endpoint (a URL's scheme decides otherwise)")
	fs.StringVar(&c.S3CredsFile, "s3-credentials-file", "", "file of MONTAGE_S3_ACCESS_KEY=… and MONTAGE_S3_SECRET_KEY=… lines (default: the environment)")
	fs.Int64Var(&c.Multipart, "multipart-threshold", 64<<20, "outputs larger than this many bytes are uploaded in parts")
	fs.Int64Var(&c.PartSize, "part-size", 16<<20, "multipart part size in bytes (S3 needs at least 5 MiB)")
	fs.DurationVar(&c.Retention, "retention", 7*24*time.Hour, "how long finished jobs and their outputs are kept (0 keeps them forever)")
	fs.DurationVar(&c.PurgeDelay, "purge-delay", time.Hour, "how long segments and attempt objects stay after a job's outputs are finalized")
	fs.DurationVar(&c.JanitorEvery, "janitor-interval", 10*time.Second, "how often the leader does storage housekeeping")
	fs.Int64Var(&c.CacheBudget, "cache-budget", 10<<30, "bytes of rendered segments kept for reuse by later jobs (0: no bound, -1: no cache)")

	fs.StringVar(&c.GossipAddr, "gossip-addr", "", "gossip (memberlist) address (default with -join or -bootstrap-expect: the API port + 2)")
	fs.StringVar(&c.Join, "join", "", "comma-separated gossip addresses of coordinators to join")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "fresh coordinators wait for this many to see each other, then form a cluster")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "file holding a base64 gossip encryption key of 16, 24 or 32 bytes (or set MONTAGE_GOSSIP_KEY)")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", 4096, "raft log entries between snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", 2*time.Minute, "how often raft checks whether a snapshot is due")
	fs.Uint64Var(&c.TrailingLogs, "raft-trailing-logs", 10240, "raft log entries a snapshot leaves in the log")
	fs.DurationVar(&c.DeadCleanup, "dead-server-cleanup", 5*time.Minute, "remove a coordinator dead this long from raft (never below quorum)")
	fs.StringVar(&c.OperatorTokenFile, "operator-token-file", "", "file holding the operator token (or set MONTAGE_OPERATOR_TOKEN)")
	fs.StringVar(&c.ViewerTokenFile, "viewer-token-file", "", "file holding a read-only token for the web console and API: jobs, agents, the catalog (or set MONTAGE_VIEWER_TOKEN)")
	fs.StringVar(&c.JoinTokenFile, "agent-join-token-file", "", "file holding the agent join token (or set MONTAGE_AGENT_JOIN_TOKEN)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate: serve the API over HTTPS and raft over mutual TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "PEM CA that signed every coordinator's certificate (raft peers and forwarding are verified against it)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", false, "serve the API without tokens on a non-loopback address (anyone who reaches it runs the farm)")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of flag settings (keys are flag names; retry_join lists addresses to join)")
	return c
}

// Load parses args (then the -config file, whose settings the command line
// overrides) and resolves the result.
func Load(fs *flag.FlagSet, args []string) (*Coordinator, error) {
	c := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.Version {
		return c, nil
	}
	if c.ConfigFile != "" {
		if err := flagfile.Apply(fs, c.ConfigFile, map[string]string{"retry-join": "join"}); err != nil {
			return nil, err
		}
	}
	return c, c.Resolve()
}

// IsLoopback reports whether host names only this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Resolve checks the settings against each other and fills in the derived
// values and defaults that depend on others. It touches nothing outside
// the struct (-dev's temporary directory is the caller's to make).
func (c *Coordinator) Resolve() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", c.Listen, err)
	}
	c.Host = host
	if c.Dev && !IsLoopback(host) {
		return fmt.Errorf("-dev has no authentication and listens on loopback only; -listen %q is not a loopback address", c.Listen)
	}
	if c.DataDir == "" && !c.Dev {
		return errors.New("-data-dir is required (or use -dev for a throwaway single-node farm)")
	}
	p, _ := strconv.Atoi(port)
	if c.RaftAddr == "" {
		c.RaftAddr = net.JoinHostPort(host, strconv.Itoa(p+1))
	}
	scheme := "http://"
	if c.TLSCert != "" || c.TLSKey != "" {
		scheme = "https://"
	}
	explicitAdvertise := c.Advertise != ""
	if !explicitAdvertise {
		c.Advertise = scheme + c.Listen
	}
	// Peers need an address they can dial: with -listen 0.0.0.0:… the raft
	// and gossip addresses others use take the host of -advertise.
	c.PeerHost = host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && explicitAdvertise {
		if u, err := url.Parse(c.Advertise); err == nil && u.Hostname() != "" {
			c.PeerHost = u.Hostname()
		}
	}
	rh, rp, err := net.SplitHostPort(c.RaftAddr)
	if err != nil {
		return fmt.Errorf("-raft-addr %q: %w", c.RaftAddr, err)
	}
	c.RaftAdvertise = c.RaftAddr
	if ip := net.ParseIP(rh); ip != nil && ip.IsUnspecified() {
		c.RaftAdvertise = net.JoinHostPort(c.PeerHost, rp)
	}
	c.JoinAddrs = nil
	for _, a := range strings.Split(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.JoinAddrs = append(c.JoinAddrs, a)
		}
	}
	c.Clustered = len(c.JoinAddrs) > 0 || c.BootstrapExpect > 1 || c.GossipAddr != ""
	if c.Clustered && c.GossipAddr == "" {
		c.GossipAddr = net.JoinHostPort(host, strconv.Itoa(p+2))
	}
	switch {
	case c.Clustered && c.Dev:
		return errors.New("-dev is a single-node farm; drop -join/-bootstrap-expect/-gossip-addr, or drop -dev")
	case c.Clustered && c.S3Endpoint == "":
		return errors.New("a cluster of coordinators needs the S3 object store (-s3-endpoint): the local store is a directory on one machine, which the other coordinators and their agents cannot read")
	case c.PartSize < 5<<20:
		return fmt.Errorf("-part-size %d: S3 needs parts of at least 5 MiB (5242880 bytes)", c.PartSize)
	case c.SnapshotThreshold < 16:
		return fmt.Errorf("-snapshot-threshold %d: must be at least 16 entries", c.SnapshotThreshold)
	case c.SnapshotInterval < time.Second:
		return fmt.Errorf("-snapshot-interval %s: must be at least 1s", c.SnapshotInterval)
	case c.Retention < 0:
		return fmt.Errorf("-retention %s: must not be negative (0 keeps jobs forever)", c.Retention)
	case c.AgentGC < 0:
		return fmt.Errorf("-agent-gc %s: must not be negative (0 keeps agents forever)", c.AgentGC)
	case c.ConcatAffinity < 0 || c.ConcatAffinity > time.Minute:
		return fmt.Errorf("-concat-affinity %s: must be between 0 (never wait) and 1m", c.ConcatAffinity)
	case c.BlockAfter < 1:
		return fmt.Errorf("-block-after %d: must be at least 1", c.BlockAfter)
	case c.QuarantineAfter < 1:
		return fmt.Errorf("-quarantine-after %d: must be at least 1", c.QuarantineAfter)
	case c.InlineConcat < 1:
		return fmt.Errorf("-inline-concat-inputs %d: must be at least 1", c.InlineConcat)
	case c.MaxQueuedJobs < 1:
		return fmt.Errorf("-max-queued-jobs %d: must be at least 1", c.MaxQueuedJobs)
	case c.MaxTasksPerJob < 2:
		return fmt.Errorf("-max-tasks-per-job %d: must be at least 2 (a render and the concat)", c.MaxTasksPerJob)
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return fmt.Errorf("-max-attempts %d: must be between 1 and 100", c.MaxAttempts)
	}
	return nil
}

// CheckAuth refuses an API that anyone on the network could use: no tokens
// on a non-loopback address needs -insecure-no-auth, said out loud.
func (c *Coordinator) CheckAuth(tokensSet bool) error {
	switch {
	case c.Dev && tokensSet:
		return errors.New("-dev runs open on loopback; drop the tokens or drop -dev")
	case tokensSet || c.Dev || IsLoopback(c.Host) || c.InsecureNoAuth:
		return nil
	}
	return fmt.Errorf("-listen %s is reachable from other machines and no tokens are set: anyone could submit jobs and make agents fetch any URL. "+
		"Set MONTAGE_OPERATOR_TOKEN and MONTAGE_AGENT_JOIN_TOKEN (e.g. export MONTAGE_OPERATOR_TOKEN=$(head -c 24 /dev/urandom | base64)) "+
		"or the -operator-token-file and -agent-join-token-file flags; or pass -insecure-no-auth to run open anyway", c.Listen)
}
