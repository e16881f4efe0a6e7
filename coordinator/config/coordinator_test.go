package config

import (
	"flag"
	"strings"
	"testing"
)

func load(args ...string) (*Coordinator, error) {
	return Load(flag.NewFlagSet("c", flag.ContinueOnError), args)
}

func TestResolve(t *testing.T) {
	c, err := load("-data-dir", "/d", "-listen", "0.0.0.0:9000", "-advertise", "https://farm.example:9000", "-join", "a:1, b:2", "-s3-endpoint", "s3:9000")
	if err != nil {
		t.Fatal(err)
	}
	if c.RaftAddr != "0.0.0.0:9001" || c.RaftAdvertise != "farm.example:9001" || c.GossipAddr != "0.0.0.0:9002" ||
		!c.Clustered || len(c.JoinAddrs) != 2 || c.JoinAddrs[1] != "b:2" || c.PeerHost != "farm.example" {
		t.Errorf("derived: %+v", c)
	}
	c, err = load("-dev")
	if err != nil || c.Advertise != "http://127.0.0.1:7400" || c.Clustered {
		t.Errorf("-dev: %v %+v", err, c)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-data-dir is required"},
		{[]string{"-dev", "-listen", "0.0.0.0:7400"}, "loopback only"},
		{[]string{"-dev", "-join", "x:1"}, "-dev is a single-node farm"},
		{[]string{"-data-dir", "d", "-bootstrap-expect", "3"}, "needs the S3 object store"},
		{[]string{"-data-dir", "d", "-part-size", "100"}, "-part-size 100"},
		{[]string{"-data-dir", "d", "-retention", "-1h"}, "-retention"},
		{[]string{"-data-dir", "d", "-quarantine-after", "0"}, "-quarantine-after 0"},
		{[]string{"-data-dir", "d", "-concat-affinity", "-1s"}, "-concat-affinity -1s: must be between 0"},
		{[]string{"-data-dir", "d", "-concat-affinity", "2m"}, "-concat-affinity 2m0s"},
		{[]string{"-data-dir", "d", "-listen", "nope"}, `-listen "nope"`},
	} {
		if _, err := load(bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v, want %q", bad.args, err, bad.want)
		}
	}
}

// A coordinator reachable from other machines without tokens refuses to
// start unless -insecure-no-auth says so, and says how to set tokens.
func TestCheckAuth(t *testing.T) {
	cases := []struct {
		args   []string
		tokens bool
		want   string // "" when allowed
	}{
		{[]string{"-data-dir", "d"}, false, ""},
		{[]string{"-data-dir", "d", "-listen", "localhost:7400"}, false, ""},
		{[]string{"-data-dir", "d", "-listen", "0.0.0.0:7400"}, true, ""},
		{[]string{"-data-dir", "d", "-listen", "0.0.0.0:7400"}, false, "MONTAGE_OPERATOR_TOKEN"},
		{[]string{"-data-dir", "d", "-listen", "192.168.1.5:7400"}, false, "-insecure-no-auth"},
		{[]string{"-data-dir", "d", "-listen", "0.0.0.0:7400", "-insecure-no-auth"}, false, ""},
		{[]string{"-dev"}, false, ""},
		{[]string{"-dev"}, true, "drop the tokens"},
	}
	for _, c := range cases {
		cfg, err := load(c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		err = cfg.CheckAuth(c.tokens)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v tokens=%v: %v, want %q", c.args, c.tokens, err, c.want)
		}
	}
}
