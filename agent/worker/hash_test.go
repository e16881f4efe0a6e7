package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// One read gives the whole sum and each part's, cut as the coordinator
// cuts them (the last part shorter).
func TestHashFileParts(t *testing.T) {
	data := []byte("0123456789")
	p := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		part  int64
		parts []string
	}{
		{0, nil},
		{4, []string{hexSum(data[:4]), hexSum(data[4:8]), hexSum(data[8:])}},
		{10, []string{hexSum(data)}},
	} {
		whole, parts, err := hashFile(f, int64(len(data)), c.part)
		if err != nil || whole != hexSum(data) || !slices.Equal(parts, c.parts) {
			t.Errorf("part size %d: whole %s parts %v err %v", c.part, whole, parts, err)
		}
	}
}
