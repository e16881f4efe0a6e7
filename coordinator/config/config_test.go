package config

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	fs := flag.NewFlagSet("c", flag.ContinueOnError)
	join := fs.String("join", "", "")
	listen := fs.String("listen", "127.0.0.1:7400", "")
	ttl := fs.Duration("lease-ttl", time.Second, "")
	expect := fs.Int("bootstrap-expect", 0, "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"-listen", "0.0.0.0:9000"}); err != nil {
		t.Fatal(err)
	}
	p := t.TempDir() + "/c.yaml"
	body := "retry_join: [host1:7402, host2:7402]\nlisten: 1.2.3.4:1\nlease_ttl: 30s\nbootstrap-expect: 3\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, p); err != nil {
		t.Fatal(err)
	}
	if *join != "host1:7402,host2:7402" || *listen != "0.0.0.0:9000" || *ttl != 30*time.Second || *expect != 3 {
		t.Errorf("join %q listen %q ttl %v expect %d", *join, *listen, *ttl, *expect)
	}
	for bad, want := range map[string]string{"nope: 1\n": `unknown key "nope"`, "lease_ttl: soon\n": "lease_ttl", "config: x\n": "unknown key"} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Apply(fs, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
