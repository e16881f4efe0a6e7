package specfile

import (
	"strings"
	"testing"

	"github.com/stream-montages/montage/internal/spec"
)

func TestParseForms(t *testing.T) {
	s, err := Parse([]byte(`
name: Forms
priority: 5
profile: {resolution: 1920x1080, fps: 59.94, video_codec: h264, quality: 20, audio_bitrate: 192k}
highlights:
  - {url: "https://a/v.mp4", at: 1:05:45, duration: 30, title: Clock}
  - {url: "https://a/v.mp4", at: 90.5, title: 42}
  - {url: "https://a/v.mp4", at: 1h5m, duration: 1m}
`))
	if err != nil {
		t.Fatal(err)
	}
	hs := s.GetHighlights()
	if len(hs) != 3 || hs[0].GetAt() != "1:05:45" || hs[0].GetDuration() != "30" || hs[1].GetAt() != "90.5" ||
		hs[1].GetTitle() != "42" || hs[1].GetDuration() != "" || hs[2].GetAt() != "1h5m" {
		t.Fatalf("highlights parsed as %v", hs)
	}
	if p := s.GetProfile(); p.GetResolution() != "1920x1080" || p.GetFps() != 59.94 || p.GetAudioBitrate() != "192k" || s.GetPriority() != 5 {
		t.Fatalf("profile parsed as %v", p)
	}
	if _, err := spec.Validate(s); err != nil {
		t.Fatalf("parsed spec does not validate: %v", err)
	}
}

func TestParseJSON(t *testing.T) {
	s, err := Parse([]byte(`{"name": "j", "highlights": [{"url": "http://h/v.mp4", "at": "0:30", "duration": 10}]}`))
	if err != nil || s.GetHighlights()[0].GetAt() != "0:30" || s.GetHighlights()[0].GetDuration() != "10" {
		t.Fatalf("Parse JSON = %v, %v", s, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"":                                   "empty",
		"highlight: []":                      "field highlight not found",
		"highlights: [{url: x, at: [1, 2]}]": "expected a single value",
		"name: [":                            "spec:",
		"name: a\n---\nname: b\n":            "more than one document",
		"name: " + strings.Repeat("x", spec.MaxSpecBytes): "limit is 1048576",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.40q) error = %v, want %q", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("highlights: [{url: 'http://h/v.mp4', at: '1:00', duration: 5}]"))
	f.Add([]byte(`{"highlights": [{"url": "x", "at": 1}]}`))
	f.Add([]byte("profile: {fps: .nan}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses must be judged by Validate without panicking.
		_, _ = spec.Validate(s)
	})
}

func TestParseMediaFields(t *testing.T) {
	s, err := Parse([]byte(`
chunk_seconds: 30
profile: {fit: crop, loudness: -23, fade: 0.5, title_overlay: true, hwaccel: nvenc, video_codec: hevc, preset: fast, cut: exact}
intro: {url: "s3://brand/intro.mp4", duration: 5}
outro: {url: "https://a/outro.mp4", title: Bye}
highlights:
  - {url: "https://www.youtube.com/watch?v=x", at: 10, source_type: page}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := s.GetProfile()
	if p.GetFit() != "crop" || p.GetLoudness() != "-23" || p.GetFade() != "0.5" || !p.GetTitleOverlay() || p.GetHwaccel() != "nvenc" ||
		p.GetPreset() != "fast" || p.GetCut() != "exact" {
		t.Errorf("profile = %v", p)
	}
	if s.GetChunkSeconds() != 30 || s.GetIntro().GetUrl() != "s3://brand/intro.mp4" || s.GetIntro().GetDuration() != "5" ||
		s.GetOutro().GetTitle() != "Bye" || s.GetHighlights()[0].GetSourceType() != "page" {
		t.Errorf("spec = %v", s)
	}
	if _, err := spec.Validate(s); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
