package flagfile

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
	if err := Apply(fs, p, map[string]string{"retry-join": "join"}); err != nil {
		t.Fatal(err)
	}
	if *join != "host1:7402,host2:7402" || *listen != "0.0.0.0:9000" || *ttl != 30*time.Second || *expect != 3 {
		t.Errorf("join %q listen %q ttl %v expect %d", *join, *listen, *ttl, *expect)
	}
	for bad, want := range map[string]string{"nope: 1\n": `unknown key "nope"`, "lease_ttl: soon\n": "lease_ttl", "config: x\n": "unknown key"} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Apply(fs, p, map[string]string{"retry-join": "join"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// What Write writes, Apply reads back; the file is not world-readable.
func TestWriteThenApply(t *testing.T) {
	p := t.TempDir() + "/agent.yaml"
	if err := Write(p, map[string]string{"coordinator": "http://10.0.0.1:7400", "slots": "2", "name": "garage: pc"}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm()&0o007 != 0 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	fs := flag.NewFlagSet("a", flag.ContinueOnError)
	coord := fs.String("coordinator", "", "")
	slots := fs.Int("slots", 1, "")
	name := fs.String("name", "", "")
	if err := Apply(fs, p, nil); err != nil {
		t.Fatal(err)
	}
	if *coord != "http://10.0.0.1:7400" || *slots != 2 || *name != "garage: pc" {
		t.Errorf("read back %q %d %q", *coord, *slots, *name)
	}
}
