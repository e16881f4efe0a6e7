package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stream-montages/montage/grafana/dashboards"
)

// prometheusServer is a real Prometheus scraping a farm.
type prometheusServer struct {
	*proc
	url string
}

// startPrometheus runs Prometheus with a config that finds the farm's
// coordinators and agents through coordURL's service discovery, scraping
// every second.
func startPrometheus(t *testing.T, coordURL string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is missing: make test installs it (or: sudo apt-get install -y prometheus)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: montage-coordinator
    http_sd_configs:
      - url: %[1]s/sd/coordinators
        refresh_interval: 1s
  - job_name: montage-agent
    http_sd_configs:
      - url: %[1]s/sd/agents
        refresh_interval: 1s
`, coordURL)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := &prometheusServer{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	p.proc = start(t, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	waitFor(t, time.Minute, "prometheus ready", func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates an instant query; an error is Prometheus refusing it.
func (p *prometheusServer) query(q string) ([]promSample, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return []promSample{{}}, nil
	}
	var out []promSample
	if err := json.Unmarshal(r.Data.Result, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// activeTargets lists the scrape URLs and health of a job's targets.
func (p *prometheusServer) activeTargets(t *testing.T, job string) map[string]string {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/targets?state=active")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range r.Data.ActiveTargets {
		if tg.Labels["job"] == job {
			out[tg.Labels["agent"]+tg.Labels["coordinator"]] = tg.Health
		}
	}
	return out
}

// checkMetrics runs promtool's linter on one /metrics page.
func checkMetrics(t *testing.T, what, metricsURL string) {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("montage_build_info")) {
		t.Fatalf("%s: HTTP %d without montage_build_info", what, resp.StatusCode)
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s: %v\n%s", what, err, out)
	}
}

// A farm scraped by a real Prometheus through its own service discovery:
// after a montage, every query of every panel of every dashboard parses
// and returns data, both agents are up targets, the metrics pass
// promtool's linter, and a stopped agent leaves the targets.
func TestObservabilityWithPrometheus(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is missing: make test installs it (or: sudo apt-get install -y prometheus)")
	}
	port := freePort(t)
	embeddedMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c := startCoordinator(t, t.TempDir(), port, "-dev", "-lease-ttl", "3s", "-dev-agent-metrics-listen", embeddedMetrics)
	extraMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	extra := start(t, "montage-agent", "-coordinator", c.url, "-data-dir", t.TempDir(), "-name", "extra",
		"-metrics-listen", extraMetrics, "-log-level", "debug")
	prom := startPrometheus(t, c.url)

	waitFor(t, time.Minute, "both agents and the coordinator up in Prometheus", func() bool {
		up, err := prom.query(`up == 1`)
		if err != nil {
			return false
		}
		var names []string
		for _, s := range up {
			names = append(names, s.Metric["job"]+"/"+s.Metric["agent"])
		}
		return slices.Contains(names, "montage-agent/embedded") && slices.Contains(names, "montage-agent/extra") &&
			slices.Contains(names, "montage-coordinator/")
	})

	res := ctl(t, c.url, "submit", writeSpec(t, mixedSpec("observed", 2)), "--wait")
	if res.code != 0 {
		t.Fatalf("submit --wait exited %d:\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	waitFor(t, time.Minute, "Prometheus scraped the finished montage", func() bool {
		r, err := prom.query(`montage_jobs_finished_total{state="succeeded"} > 0`)
		if err != nil || len(r) == 0 {
			return false
		}
		// Agents report their encoder with their next call after a render.
		r, err = prom.query(`montage_agent_encoder_info`)
		return err == nil && len(r) > 0
	})

	var failed []string
	for _, f := range []string{"farm.json", "agents.json", "coordinators.json"} {
		b, err := os.ReadFile(filepath.Join("..", "grafana", "dashboards", f))
		if err != nil {
			t.Fatal(err)
		}
		qs, err := dashboards.Queries(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) < 10 {
			t.Fatalf("%s: only %d queries", f, len(qs))
		}
		for _, q := range qs {
			expr := dashboards.Evaluable(q.Expr, "5m")
			var r []promSample
			var qerr error
			// A series scraped once has no rate yet: give the scrapes a moment.
			ok := pollUntil(20*time.Second, func() bool {
				r, qerr = prom.query(expr)
				return qerr == nil && len(r) > 0
			})
			if !ok {
				failed = append(failed, fmt.Sprintf("%s %q: %s → %d series, err %v", f, q.Panel, expr, len(r), qerr))
			}
		}
	}
	if len(failed) > 0 {
		t.Fatalf("panel queries without data:\n%s", strings.Join(failed, "\n"))
	}

	// montagectl shows the same reports: speed with the encoder, last contact.
	agentsOut := ctl(t, c.url, "agents").stdout
	mustContain(t, agentsOut, "LAST CONTACT", "montagectl agents")
	if !regexp.MustCompile(`\d+\.\dx libx264`).MatchString(agentsOut) || !regexp.MustCompile(`\ds ago`).MatchString(agentsOut) {
		t.Errorf("montagectl agents shows no speed or last contact:\n%s", agentsOut)
	}

	checkMetrics(t, "coordinator", c.url+"/metrics")
	checkMetrics(t, "embedded agent", "http://"+embeddedMetrics+"/metrics")
	checkMetrics(t, "extra agent", "http://"+extraMetrics+"/metrics")

	// The stopped agent leaves the discovery, then Prometheus's targets.
	extra.kill(syscall.SIGTERM)
	waitFor(t, 2*time.Minute, "the stopped agent gone from /sd/agents and Prometheus", func() bool {
		resp, err := http.Get(c.url + "/sd/agents")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(b, []byte(`"extra"`)) {
			return false
		}
		targets := prom.activeTargets(t, "montage-agent")
		_, stillThere := targets["extra"]
		return !stillThere && targets["embedded"] == "up"
	})
}

// pollUntil calls cond until it holds or timeout passes.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// bufBinary finds buf (make test installs it into GOPATH/bin).
func bufBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "buf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("buf is missing: make test installs it (or: go install github.com/bufbuild/buf/cmd/buf@v1.75.0)")
	return ""
}

// grpcurl-style tools work against a coordinator without the schema files:
// buf curl learns the services by gRPC reflection, and the gRPC health
// service answers SERVING once the node leads with its log replayed.
func TestGRPCReflectionAndHealth(t *testing.T) {
	buf := bufBinary(t)
	port := freePort(t)
	c := startCoordinator(t, t.TempDir(), port)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(buf, append([]string{"curl", "--protocol", "grpc", "--http2-prior-knowledge"}, args...)...)
		cmd.Dir = t.TempDir() // no buf.yaml nearby: reflection is the only schema
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buf curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	methods := run("--list-methods", c.url)
	for _, m := range []string{"montage.v1.JobService/SubmitJob", "montage.v1.AgentService/LeaseTask", "montage.v1.ClusterService/GetStatus", "grpc.health.v1.Health/Check"} {
		mustContain(t, methods, m, "buf curl --list-methods")
	}
	var status struct {
		LeaderID   string `json:"leaderId"`
		AnsweredBy string `json:"answeredBy"`
	}
	if err := json.Unmarshal([]byte(run(c.url+"/montage.v1.ClusterService/GetStatus")), &status); err != nil || status.LeaderID == "" || status.LeaderID != status.AnsweredBy {
		t.Fatalf("GetStatus through reflection: %+v, %v", status, err)
	}
	mustContain(t, run("-d", "{}", c.url+"/grpc.health.v1.Health/Check"), `"SERVING"`, "health check")
	mustContain(t, run("-d", `{"service":"montage.v1.JobService"}`, c.url+"/grpc.health.v1.Health/Check"), `"SERVING"`, "health check of JobService")
	cmd := exec.Command(buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", `{"service":"no.such.Service"}`, c.url+"/grpc.health.v1.Health/Check")
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not_found") {
		t.Errorf("health of an unknown service: %v\n%s", err, out)
	}
}
