package media

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stream-montages/montage/internal/spec"
)

// codecs are the video codecs a job can ask for.
var codecs = []string{"h264", "hevc", "av1"}

// Candidates are the encoders an agent tries: software first, then every
// hardware family for every codec.
func Candidates() []string {
	var out []string
	for _, fam := range append([]string{spec.HWNone}, spec.HWFamilies...) {
		for _, codec := range codecs {
			out = append(out, spec.EncoderFor(fam, codec))
		}
	}
	return out
}

// CompiledEncoders lists the encoder names `ffmpeg -encoders` shows. Being
// compiled in proves nothing about the machine; it only saves test encodes
// of encoders that cannot exist.
func (t Tools) CompiledEncoders(ctx context.Context) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, t.FFmpeg, "-hide_banner", "-encoders").Output()
	if err != nil {
		return nil, err
	}
	return ParseEncoders(out), nil
}

// HasFilter reports whether ffmpeg was built with the named filter (the
// subtitles filter needs libass, which not every build has).
func (t Tools) HasFilter(ctx context.Context, name string) bool {
	out, err := exec.CommandContext(ctx, t.FFmpeg, "-hide_banner", "-filters").Output()
	return err == nil && ParseFilters(out)[name]
}

// ParseFilters reads `ffmpeg -filters`: lines of flags, a name, the pads
// and a description, after a legend that ends in a blank-ish line.
func ParseFilters(b []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && strings.Contains(f[2], "->") && strings.Trim(f[0], "TSC.") == "" {
			out[f[1]] = true
		}
	}
	return out
}

// ParseEncoders reads `ffmpeg -encoders`: lines of flags, a name and a
// description after the "------" separator.
func ParseEncoders(b []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	started := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if !started {
			started = len(f) == 1 && strings.HasPrefix(f[0], "---")
			continue
		}
		if len(f) >= 2 {
			out[f[1]] = true
		}
	}
	return out
}

// ProveEncoders runs a one-second test encode with each candidate that is
// compiled in (a few at a time) and returns those that worked, in candidate
// order. The test encode uses the same arguments a render would.
func (t Tools) ProveEncoders(ctx context.Context, candidates []string) []string {
	compiled, err := t.CompiledEncoders(ctx)
	if err != nil {
		return nil
	}
	var (
		mu     sync.Mutex
		works  = map[string]bool{}
		wg     sync.WaitGroup
		tokens = make(chan struct{}, 3)
	)
	for _, enc := range candidates {
		if !compiled[enc] {
			continue
		}
		wg.Add(1)
		go func(enc string) {
			defer wg.Done()
			tokens <- struct{}{}
			defer func() { <-tokens }()
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			p := Profile{Width: 256, Height: 144, FPS: 30, Quality: 28, AudioBitrate: "64k", Encoder: enc}
			if exec.CommandContext(cctx, t.FFmpeg, TestEncodeArgs(p)...).Run() == nil {
				mu.Lock()
				works[enc] = true
				mu.Unlock()
			}
		}(enc)
	}
	wg.Wait()
	var out []string
	for _, enc := range candidates {
		if works[enc] {
			out = append(out, enc)
		}
	}
	return out
}

// Families lists the hardware families among encoders, sorted.
func Families(encoders []string) []string {
	seen := map[string]bool{}
	for _, e := range encoders {
		if f := spec.EncoderFamily(e); f != "" {
			seen[f] = true
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// GPUName asks nvidia-smi for the first GPU's name; "" where there is none.
func GPUName(ctx context.Context) string {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return ""
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, path, "--query-gpu=name", "--format=csv,noheader").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// fontPaths are common places of a plain sans font, tried when fontconfig
// cannot answer.
var fontPaths = []string{
	"/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
	"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
	"/usr/share/fonts/dejavu/DejaVuSans.ttf",
	"/usr/share/fonts/TTF/DejaVuSans.ttf",
	"/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
	"/System/Library/Fonts/Supplemental/Arial.ttf",
	"/Library/Fonts/Arial.ttf",
	`C:\Windows\Fonts\arial.ttf`,
}

// FindFont returns a font file for titles: the -font flag's file if given,
// else fontconfig's sans, else a well-known path; "" when there is none.
func FindFont(ctx context.Context, configured string) string {
	if configured != "" {
		if _, err := os.Stat(configured); err == nil {
			return configured
		}
		return ""
	}
	if path, err := exec.LookPath("fc-match"); err == nil {
		out, err := exec.CommandContext(ctx, path, "-f", "%{file}", "sans:bold").Output()
		if p := strings.TrimSpace(string(out)); err == nil && p != "" {
			if _, err := os.Stat(p); err == nil && (strings.HasSuffix(p, ".ttf") || strings.HasSuffix(p, ".otf")) {
				return p
			}
		}
	}
	for _, p := range fontPaths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
