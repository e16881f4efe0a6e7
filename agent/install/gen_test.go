package install

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/systemd/montage-agent.service")

const shipped = "../../deploy/systemd/montage-agent.service"

func linuxService(t *testing.T) Service {
	t.Helper()
	p, err := PathsFor("linux")
	if err != nil {
		t.Fatal(err)
	}
	return Service{Executable: DefaultExecutable("linux"), Paths: p}
}

// The unit shipped in deploy/systemd (and in the packages) is the one
// `montage-agent install` writes for the packaged binary.
func TestShippedUnitIsGenerated(t *testing.T) {
	unit := Systemd(linuxService(t))
	if *update {
		if err := os.WriteFile(shipped, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != unit {
		t.Fatalf("%s differs from install.Systemd: go test ./agent/install -update", shipped)
	}
}

// systemd-analyze verify accepts the shipped units and generated ones
// (with the binary at an existing path and one with spaces).
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: sudo apt-get install -y systemd")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin dir", "montage agent")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "montage-bin")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := linuxService(t)
	units := map[string]string{"montage-agent.service": strings.ReplaceAll(Systemd(s), DefaultExecutable("linux"), plain)}
	s.Executable = bin
	units["montage-agent-generated.service"] = Systemd(s)
	coord, err := os.ReadFile("../../deploy/systemd/montage-coordinator.service")
	if err != nil {
		t.Fatal(err)
	}
	units["montage-coordinator.service"] = strings.ReplaceAll(string(coord), "/usr/bin/montage-coordinator", plain)
	for name, body := range units {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", p).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte(name)) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}

func TestLaunchdAndWindowsDefinitions(t *testing.T) {
	p, _ := PathsFor("darwin")
	plist := Launchd(Service{Executable: "/usr/local/bin/montage-agent", Paths: p})
	var doc struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(plist), &doc); err != nil {
		t.Fatalf("plist: %v", err)
	}
	for _, k := range []string{"Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "ProcessType", "LowPriorityIO"} {
		if !strings.Contains(strings.Join(doc.Dict.Keys, " "), k) {
			t.Errorf("plist lacks %s", k)
		}
	}
	if !strings.Contains(plist, "<string>/Library/Application Support/montage-agent/agent.yaml</string>") {
		t.Error("plist does not pass the config file as one argument")
	}
	w, _ := PathsFor("windows")
	def := Windows(Service{Executable: DefaultExecutable("windows"), Paths: w})
	if !strings.Contains(def, `"C:\Program Files\montage-agent\montage-agent.exe" run -config C:\ProgramData\montage-agent\agent.yaml`) {
		t.Errorf("windows command line:\n%s", def)
	}
	if _, err := Definition("plan9", Service{}); err == nil {
		t.Error("a definition for plan9")
	}
}
