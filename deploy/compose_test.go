// Package deploy holds what runs the farm outside this repository's tests:
// compose, Kubernetes, systemd, packages, Prometheus. This test loads the
// compose file with compose-go, as `docker compose` does.
package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

func TestComposeFarm(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"}, cli.WithWorkingDirectory("."), cli.WithEnv(nil), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	want := []string{"agent-1", "agent-2", "coordinator-1", "coordinator-2", "coordinator-3", "grafana", "minio", "prometheus"}
	if got := p.ServiceNames(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, name := range []string{"coordinator-1", "coordinator-2", "coordinator-3"} {
		s := p.Services[name]
		cmd := strings.Join(s.Command, " ")
		if !strings.Contains(cmd, "-bootstrap-expect=3") || !strings.Contains(cmd, "-s3-endpoint=http://minio:9000") || s.Environment["MONTAGE_OPERATOR_TOKEN"] == nil {
			t.Errorf("%s: %s", name, cmd)
		}
		if s.Build == nil || !strings.HasSuffix(s.Build.Dockerfile, "coordinator.Dockerfile") {
			t.Errorf("%s builds %+v", name, s.Build)
		}
	}
	// Every file the farm mounts or builds from exists in the repository.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == "bind" {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", s.Name, v.Source, err)
				}
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s builds from %s: %v", s.Name, s.Build.Dockerfile, err)
			}
		}
	}
	graf := p.Services["grafana"]
	mounts := map[string]bool{}
	for _, v := range graf.Volumes {
		mounts[v.Target] = true
	}
	for _, m := range []string{"/etc/grafana/provisioning/dashboards", "/etc/grafana/provisioning/datasources/montage.yaml", "/var/lib/grafana/dashboards/montage"} {
		if !mounts[m] {
			t.Errorf("grafana lacks %s", m)
		}
	}
}
