// Package proto_test checks that the committed generated code matches the
// .proto files: `make proto` regenerates it.
package proto_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGeneratedCodeIsCurrent(t *testing.T) {
	for _, tool := range []string{"buf", "protoc-gen-go", "protoc-gen-connect-go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH; run `make tools` (scripts/ensure-tools.sh) or `make test`, which installs it", tool)
		}
	}
	out := t.TempDir()
	gen := filepath.Join(out, "buf.gen.yaml")
	cfg, err := os.ReadFile("../buf.gen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gen, bytes.ReplaceAll(cfg, []byte("out: proto"), []byte("out: "+out+"/proto")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("buf", "generate", "--template", gen)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	lint := exec.Command("buf", "lint")
	lint.Dir = ".."
	if b, err := lint.CombinedOutput(); err != nil {
		t.Errorf("buf lint: %v\n%s", err, b)
	}
	n := 0
	err = filepath.WalkDir(filepath.Join(out, "proto"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") {
			return err
		}
		n++
		rel, _ := filepath.Rel(filepath.Join(out, "proto"), p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s is generated but not committed", rel)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make proto` and commit the result", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("buf generated no Go files")
	}
}
