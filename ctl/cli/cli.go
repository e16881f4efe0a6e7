// Package cli holds montagectl's commands.
package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/stream-montages/montage/ctl/specfile"
	"github.com/stream-montages/montage/internal/tlsconf"
	"github.com/stream-montages/montage/internal/version"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

// ExitError carries a process exit code for outcomes that are not errors of
// montagectl itself (a job that failed or was canceled).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

type app struct {
	addr      string
	tokenFile string
	token     string
	tlsCA     string
	skipTLS   bool
	out       io.Writer
	errOut    io.Writer
	http      *http.Client
}

func (a *app) jobs() montagev1connect.JobServiceClient {
	return montagev1connect.NewJobServiceClient(a.http, strings.TrimRight(a.addr, "/"),
		connect.WithInterceptors(a.authorize(), retryUnavailable(15*time.Second)))
}

// authorize sends the operator token from --token-file or MONTAGE_TOKEN,
// on unary calls and streams alike.
func (a *app) authorize() connect.Interceptor {
	return bearerInterceptor(a.token)
}

// loadToken reads the operator token once, before any call: a token file
// that cannot be read is an error, never a silent anonymous call.
func (a *app) loadToken() error {
	a.token = strings.TrimSpace(os.Getenv("MONTAGE_TOKEN"))
	if a.tokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	if a.token = strings.TrimSpace(string(b)); a.token == "" {
		return fmt.Errorf("--token-file %s: the file is empty", a.tokenFile)
	}
	return nil
}

type bearerInterceptor string

func (t bearerInterceptor) set(h http.Header) {
	if t != "" {
		h.Set("Authorization", "Bearer "+string(t))
	}
}

func (t bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		t.set(req.Header())
		return next(ctx, req)
	}
}

func (t bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		t.set(conn.RequestHeader())
		return conn
	}
}

func (t bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// retryUnavailable retries calls a coordinator refused for now (no leader
// yet, election in progress). Every write carries an idempotency key or is
// idempotent by nature, so a retry never doubles anything.
func retryUnavailable(budget time.Duration) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			deadline := time.Now().Add(budget)
			wait := 100 * time.Millisecond
			for {
				resp, err := next(ctx, req)
				var badCert *tls.CertificateVerificationError
				if connect.CodeOf(err) != connect.CodeUnavailable || errors.As(err, &badCert) || time.Now().Add(wait).After(deadline) {
					return resp, err // a certificate that fails to verify will not pass on retry
				}
				select {
				case <-ctx.Done():
					return nil, err
				case <-time.After(wait):
				}
				wait = min(2*wait, 2*time.Second)
			}
		}
	}
}

// New builds the root command writing to out and errOut.
func New(out, errOut io.Writer) *cobra.Command {
	a := &app{out: out, errOut: errOut, http: &http.Client{}}
	root := &cobra.Command{
		Use:           "montagectl",
		Short:         "Submit and follow Stream Montages jobs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("MONTAGE_ADDR")
	if def == "" {
		def = "http://127.0.0.1:7400"
	}
	root.PersistentFlags().StringVar(&a.addr, "addr", def, "coordinator URL, or several comma-separated to fail over between (env MONTAGE_ADDR)")
	root.PersistentFlags().StringVar(&a.tokenFile, "token-file", "", "file holding the operator token (default: env MONTAGE_TOKEN)")
	root.PersistentFlags().StringVar(&a.tlsCA, "tls-ca", os.Getenv("MONTAGE_TLS_CA"), "PEM CA to verify an https coordinator (env MONTAGE_TLS_CA; default: system roots)")
	root.PersistentFlags().BoolVar(&a.skipTLS, "tls-skip-verify", false, "do not verify the coordinator's certificate: for tests only")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if err := a.loadToken(); err != nil {
			return err
		}
		cfg, err := tlsconf.Client(a.tlsCA, a.skipTLS)
		if err != nil {
			return err
		}
		addrs, err := parseAddrs(a.addr)
		if err != nil {
			return err
		}
		a.addr = addrs[0].String()
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		a.http = &http.Client{Transport: &failover{addrs: addrs, next: tr}}
		return nil
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(a.submitCmd(), a.getCmd(), a.listCmd(), a.downloadCmd(), a.urlCmd(), a.cancelCmd(),
		a.clusterCmd(), a.agentsCmd(), a.agentCmd(), a.versionCmd(),
		a.highlightsCmd(), a.feedsCmd(), a.scheduleCmd(), a.montagesCmd())
	return root
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print montagectl's version",
		Args:  cobra.NoArgs,
		// No coordinator is needed, so no token or TLS set-up either.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(a.out, "montagectl %s\n", version.String())
			return nil
		},
	}
}

// Exit codes: scripts rely on them (docs/operations.md).
const (
	CodeOK          = 0
	CodeTrouble     = 1 // montagectl could not do what was asked, or a bug
	CodeJobFailed   = 2 // the job it waited for failed
	CodeJobCanceled = 3 // the job it waited for was canceled
)

// Main runs montagectl and returns the process exit code.
func Main(args []string, out, errOut io.Writer) int {
	return run(New(out, errOut), args, errOut)
}

// run executes root. Anything unforeseen (a panic) becomes one line that
// names the command and the version, with exit code 1: 2 and 3 speak of the
// job, never of montagectl.
func run(root *cobra.Command, args []string, errOut io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			name := root.Name()
			if c, _, err := root.Find(args); err == nil && c != nil {
				name = c.CommandPath()
			}
			fmt.Fprintf(errOut, "montagectl: internal error in %q (version %s): %v; please report this line and the command you ran\n",
				name, version.String(), r)
			code = CodeTrouble
		}
	}()
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			fmt.Fprintln(errOut, ee.Msg)
			return ee.Code
		}
		fmt.Fprintln(errOut, "montagectl:", describe(err))
		return CodeTrouble
	}
	return CodeOK
}

// describe turns a Connect error into "InvalidArgument: highlights[3]...".
func describe(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		code := ce.Code().String()
		// Connect spells codes in snake case; people read CamelCase in docs.
		parts := strings.Split(code, "_")
		for i, p := range parts {
			if p != "" {
				parts[i] = strings.ToUpper(p[:1]) + p[1:]
			}
		}
		return strings.Join(parts, "") + ": " + ce.Message()
	}
	return err.Error()
}

func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *app) submitCmd() *cobra.Command {
	var (
		wait                      bool
		quiet                     bool
		key                       string
		webhookURL, webhookSecret string
	)
	c := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a job spec (YAML or JSON; - for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := specfile.Load(args[0])
			if err != nil {
				return err
			}
			if key == "" {
				// A fresh key per invocation still makes the client's own
				// retries of this one submission safe.
				key = newKey()
			}
			resp, err := a.jobs().SubmitJob(cmd.Context(), connect.NewRequest(&montagev1.SubmitJobRequest{Spec: s, IdempotencyKey: key,
				WebhookUrl: webhookURL, WebhookSecret: a.webhookSecret(webhookURL, webhookSecret)}))
			if err != nil {
				return err
			}
			j := resp.Msg.GetJob()
			if quiet {
				fmt.Fprintln(a.out, j.GetId())
			} else {
				fmt.Fprintf(a.out, "job %s submitted (%d highlights)\n", j.GetId(), len(j.GetSpec().GetHighlights()))
			}
			if !wait {
				return nil
			}
			return a.wait(cmd.Context(), j.GetId(), quiet)
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends; exit non-zero unless it succeeds")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the job id")
	c.Flags().StringVar(&key, "idempotency-key", "", "resubmitting with the same key returns the first job")
	c.Flags().StringVar(&webhookURL, "webhook", "", "POST the job's end here (signed JSON, retried for a day, once per job)")
	c.Flags().StringVar(&webhookSecret, "webhook-secret", "", "its HMAC-SHA256 key (default: MONTAGE_WEBHOOK_SECRET, or one made and shown once)")
	return c
}

func (a *app) getCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "get JOB",
		Short: "Show a job and its tasks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := a.jobs().GetJob(cmd.Context(), connect.NewRequest(&montagev1.GetJobRequest{JobId: args[0]}))
			if err != nil {
				return err
			}
			return printJob(a.out, format, resp.Msg.GetJob())
		},
	}
	c.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	return c
}

func (a *app) listCmd() *cobra.Command {
	var (
		format string
		limit  int32
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := a.jobs().ListJobs(cmd.Context(), connect.NewRequest(&montagev1.ListJobsRequest{Limit: limit}))
			if err != nil {
				return err
			}
			return printJobs(a.out, format, resp.Msg.GetJobs())
		},
	}
	c.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	c.Flags().Int32Var(&limit, "limit", 100, "most jobs to list")
	return c
}

func (a *app) cancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := a.jobs().CancelJob(cmd.Context(), connect.NewRequest(&montagev1.CancelJobRequest{JobId: args[0]}))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "job %s %s\n", resp.Msg.GetJob().GetId(), stateWord(resp.Msg.GetJob().GetState()))
			return nil
		},
	}
}

var outputNames = []string{"montage", "srt", "vtt", "chapters", "thumbnail", "manifest"}

var outputFiles = map[string]string{
	"montage": "montage.mp4", "srt": "montage.srt", "vtt": "montage.vtt",
	"chapters": "chapters.txt", "thumbnail": "thumbnail.jpg", "manifest": "manifest.json",
}

func (a *app) downloadCmd() *cobra.Command {
	var (
		path string
		what string
	)
	c := &cobra.Command{
		Use:   "download JOB",
		Short: "Download a finished job's outputs (resumes a broken download)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			job := args[0]
			names := []string{what}
			if what == "all" {
				j, err := a.jobs().GetJob(cmd.Context(), connect.NewRequest(&montagev1.GetJobRequest{JobId: job}))
				if err != nil {
					return err
				}
				names = nil
				for _, n := range outputNames {
					if _, ok := j.Msg.GetJob().GetOutputs()[n]; ok {
						names = append(names, n)
					}
				}
				if len(names) == 0 {
					return fmt.Errorf("job %s has no outputs yet (state %s)", job, stateWord(j.Msg.GetJob().GetState()))
				}
				if path == "" {
					path = job
				}
				if err := os.MkdirAll(path, 0o755); err != nil {
					return err
				}
			} else if _, ok := outputFiles[what]; !ok {
				return fmt.Errorf("--what %q: use %s or all", what, strings.Join(outputNames, ", "))
			}
			for _, n := range names {
				dst := path
				switch {
				case what == "all":
					dst = filepath.Join(path, outputFiles[n])
				case dst == "" && n == "montage":
					dst = job + ".mp4"
				case dst == "":
					dst = job + "-" + outputFiles[n]
				}
				resp, err := a.jobs().GetOutputURL(cmd.Context(), connect.NewRequest(&montagev1.GetOutputURLRequest{JobId: job, Output: n}))
				if err != nil {
					return err
				}
				size, err := fetch(cmd.Context(), a.http, resp.Msg.GetUrl(), dst, a.progress(n))
				if err != nil {
					return err
				}
				if err := verifyFile(dst, resp.Msg.GetSize(), resp.Msg.GetSha256()); err != nil {
					_ = os.Remove(dst) // never leave a file that is not what the farm made
					return fmt.Errorf("%s: %w; the file was removed, download it again", dst, err)
				}
				fmt.Fprintf(a.out, "downloaded %s (%.1f MB)\n", dst, float64(size)/1e6)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&path, "output", "o", "", "file to write (default JOB.mp4; a directory with --what all)")
	c.Flags().StringVar(&what, "what", "montage", "montage, srt, vtt, chapters, thumbnail, manifest or all")
	return c
}

func (a *app) urlCmd() *cobra.Command {
	var (
		what string
		ttl  time.Duration
	)
	c := &cobra.Command{
		Use:   "url JOB",
		Short: "Print a presigned link to a job's output, to share",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := a.jobs().GetOutputURL(cmd.Context(), connect.NewRequest(&montagev1.GetOutputURLRequest{
				JobId: args[0], Output: what, TtlSeconds: int64(ttl / time.Second),
			}))
			if err != nil {
				return err
			}
			fmt.Fprintln(a.out, resp.Msg.GetUrl())
			return nil
		},
	}
	c.Flags().StringVar(&what, "what", "montage", "montage, srt, vtt, chapters, thumbnail or manifest")
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the link works (at most 168h)")
	return c
}
