// Package version says which build of Stream Montages is running, for
// `montagectl version`, error reports and build_info metrics.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is set at link time (-ldflags "-X ...version.Version=v1.2.3");
// a plain `go build` reports "dev" with the VCS revision when Go knows it.
var Version = "dev"

// Protocol is the version of the agent protocol this build speaks, and
// MinProtocol the oldest a coordinator still accepts. Raise Protocol when
// a change needs both sides; raise MinProtocol when old agents can no
// longer work with this coordinator.
const (
	Protocol    = 1
	MinProtocol = 1
)

var (
	once     sync.Once
	revision string
	modified bool
)

// Commit may be stamped by the release build (-X …/version.Commit=abc1234)
// where the build has no VCS information.
var Commit = ""

func read() {
	revision = Commit
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if revision == "" {
				revision = s.Value
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
}

// Revision is the VCS commit the binary was built from, or "unknown".
func Revision() string {
	once.Do(read)
	if revision == "" {
		return "unknown"
	}
	return revision
}

// String is "dev (abc1234)", "dev (abc1234, modified)" or "v1.2.3 (abc1234)".
func String() string {
	once.Do(read)
	rev := "unknown"
	if revision != "" {
		rev = revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
	}
	if modified {
		rev += ", modified"
	}
	return Version + " (" + rev + ")"
}

// BuildInfo is the montage_build_info gauge both binaries export: always
// 1, its labels naming the build.
func BuildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "montage_build_info", Help: "Always 1; the labels name the build.",
		ConstLabels: prometheus.Labels{"version": Version, "revision": Revision(), "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
