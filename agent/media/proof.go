package media

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Proof is the outcome of an agent's test encodes, kept in its data
// directory so a restart can register at once; Key says what it was proven
// on: the ffmpeg binary and version, the GPU, the device nodes, the
// candidates. Any change makes the key differ and the proof is made again.
type Proof struct {
	Key      string    `json:"key"`
	Encoders []string  `json:"encoders"`
	ProvedAt time.Time `json:"proved_at"`
}

// ProofKey hashes what an encoder proof depends on.
func ProofKey(ffmpegPath, ffmpegVersion, gpu string, devices, candidates []string) string {
	h := sha256.New()
	for _, part := range [][]string{{ffmpegPath, ffmpegVersion, gpu}, devices, candidates} {
		h.Write([]byte(strings.Join(part, "\x00")))
		h.Write([]byte{0xff})
	}
	if fi, err := os.Stat(ffmpegPath); err == nil {
		// A new ffmpeg installed over the old one at the same path.
		h.Write([]byte(fi.ModTime().UTC().Format(time.RFC3339Nano)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Devices lists the device nodes hardware encoders use (render nodes,
// NVIDIA's), sorted: a GPU added or removed changes the proof's key.
func Devices() []string {
	var out []string
	for _, pat := range []string{"/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/nvidiactl"} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	sort.Strings(out)
	return out
}

// LoadProof reads a proof made under key; ok is false for none or another key.
func LoadProof(path, key string) ([]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var p Proof
	if json.Unmarshal(b, &p) != nil || p.Key != key || len(p.Encoders) == 0 {
		return nil, false
	}
	return p.Encoders, true
}

// SaveProof writes a proof (atomically: a crash leaves the old one or none).
func SaveProof(path string, p Proof) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
