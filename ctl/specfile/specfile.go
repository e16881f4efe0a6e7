// Package specfile reads job specs written by people, in YAML or JSON, into
// the API's JobSpec. Unknown fields are errors (a typo must not be ignored),
// and times may be written as numbers or strings.
package specfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// scalar takes any YAML scalar as its literal text, so `at: 90`,
// `at: 1:30` and `at: "1h5m"` all arrive as typed.
type scalar string

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a single value like 1:05:45 or 90", n.Line)
	}
	*s = scalar(n.Value)
	return nil
}

type fileProfile struct {
	Resolution   scalar  `yaml:"resolution"`
	FPS          float64 `yaml:"fps"`
	VideoCodec   string  `yaml:"video_codec"`
	Quality      int32   `yaml:"quality"`
	AudioBitrate scalar  `yaml:"audio_bitrate"`
	Fit          string  `yaml:"fit"`
	Loudness     scalar  `yaml:"loudness"`
	Fade         scalar  `yaml:"fade"`
	TitleOverlay bool    `yaml:"title_overlay"`
	HWAccel      string  `yaml:"hwaccel"`
	Preset       string  `yaml:"preset"`
	Cut          string  `yaml:"cut"`
}

type fileHighlight struct {
	URL        string `yaml:"url"`
	At         scalar `yaml:"at"`
	Duration   scalar `yaml:"duration"`
	Title      scalar `yaml:"title"`
	SourceType string `yaml:"source_type"`
}

func (h *fileHighlight) proto() *montagev1.Highlight {
	if h == nil {
		return nil
	}
	return &montagev1.Highlight{Url: h.URL, At: string(h.At), Duration: string(h.Duration), Title: string(h.Title), SourceType: h.SourceType}
}

type file struct {
	Name         string          `yaml:"name"`
	Priority     int32           `yaml:"priority"`
	Profile      *fileProfile    `yaml:"profile"`
	Highlights   []fileHighlight `yaml:"highlights"`
	Intro        *fileHighlight  `yaml:"intro"`
	Outro        *fileHighlight  `yaml:"outro"`
	ChunkSeconds float64         `yaml:"chunk_seconds"`
	Transcribe   bool            `yaml:"transcribe"`
	Subtitles    string          `yaml:"subtitles"`
	Language     string          `yaml:"language"`
	Prompt       string          `yaml:"prompt"`
}

// Parse reads a spec from YAML or JSON bytes.
func Parse(b []byte) (*montagev1.JobSpec, error) {
	if len(b) > spec.MaxSpecBytes {
		return nil, fmt.Errorf("spec: file is %d bytes; the limit is %d (1 MiB)", len(b), spec.MaxSpecBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("spec: file is empty")
		}
		return nil, fmt.Errorf("spec: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("spec: file holds more than one document")
	}
	out := &montagev1.JobSpec{Name: f.Name, Priority: f.Priority, Intro: f.Intro.proto(), Outro: f.Outro.proto(), ChunkSeconds: f.ChunkSeconds,
		Transcribe: f.Transcribe, Subtitles: f.Subtitles, Language: f.Language, Prompt: f.Prompt}
	if f.Profile != nil {
		out.Profile = &montagev1.RenderProfile{
			Resolution: string(f.Profile.Resolution), Fps: f.Profile.FPS, VideoCodec: f.Profile.VideoCodec,
			Quality: f.Profile.Quality, AudioBitrate: string(f.Profile.AudioBitrate),
			Fit: f.Profile.Fit, Loudness: string(f.Profile.Loudness), Fade: string(f.Profile.Fade),
			TitleOverlay: f.Profile.TitleOverlay, Hwaccel: f.Profile.HWAccel, Preset: f.Profile.Preset, Cut: f.Profile.Cut,
		}
	}
	for _, h := range f.Highlights {
		out.Highlights = append(out.Highlights, h.proto())
	}
	return out, nil
}

// Load reads a spec file ("-" for standard input).
func Load(path string) (*montagev1.JobSpec, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, spec.MaxSpecBytes+1))
	} else {
		var st os.FileInfo
		if st, err = os.Stat(path); err == nil && st.Size() > spec.MaxSpecBytes {
			return nil, fmt.Errorf("%s: spec: file is %d bytes; the limit is %d (1 MiB)", path, st.Size(), spec.MaxSpecBytes)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
