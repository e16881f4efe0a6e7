package media

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, args []string) {
	t.Helper()
	got := strings.Join(args, "\n") + "\n"
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./agent/media -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n got:\n%s\nwant:\n%s", name, path, got, want)
	}
}

var prof = Profile{Width: 1280, Height: 720, FPS: 30, Quality: 23, AudioBitrate: "160k"}

func TestRenderArgsGolden(t *testing.T) {
	cases := map[string]Render{
		"render-mp4": {Source: "https://cdn.example/vod.mp4", Kind: SourceFile, Start: 3945.25, Duration: 30, HasAudio: true, Profile: prof, Output: "/work/out.mp4"},
		"render-hls-silent": {Source: "https://cdn.example/v/index.m3u8", Kind: SourceHLS, Start: 12, Duration: 6.5, HasAudio: false,
			Profile: Profile{Width: 1920, Height: 1080, FPS: 59.94, Quality: 20, AudioBitrate: "192k"}, Output: "/work/out.mp4"},
	}
	for name, r := range cases {
		golden(t, name, RenderArgs(r))
	}
	golden(t, "concat", ConcatArgs("/w/list.ffconcat", "/w/chapters.ffmeta", "160k", "/w/out.mp4"))
}

// The safety rules hold for every source kind, whatever the golden files say.
func TestRenderArgsRules(t *testing.T) {
	for _, kind := range []SourceKind{SourceFile, SourceHLS} {
		args := RenderArgs(Render{Source: "https://x/y", Kind: kind, Start: 5, Duration: 2, HasAudio: true, Profile: prof, Output: "o.mp4"})
		ss, in, tt := slices.Index(args, "-ss"), slices.Index(args, "-i"), slices.Index(args, "-t")
		if args[0] != "-nostdin" {
			t.Errorf("kind %d: -nostdin is not first", kind)
		}
		if ss < 0 || in < 0 || ss > in || tt < in {
			t.Errorf("kind %d: want -ss before -i and -t after it: %v", kind, args)
		}
		wl := slices.Index(args, "-protocol_whitelist")
		if wl < 0 || wl > in {
			t.Fatalf("kind %d: no protocol whitelist before the source", kind)
		}
		for _, banned := range []string{"file", "concat", "subfile", "data", "pipe"} {
			if slices.Contains(strings.Split(args[wl+1], ","), banned) {
				t.Errorf("kind %d: whitelist allows %s", kind, banned)
			}
		}
	}
}

func TestFPSRational(t *testing.T) {
	cases := map[float64]string{30: "30", 25: "25", 29.97: "30000/1001", 59.94: "60000/1001", 23.976: "24000/1001", 12.5: "12500/1000"}
	for in, want := range cases {
		if got := FPSRational(in); got != want {
			t.Errorf("FPSRational(%v) = %q, want %q", in, got, want)
		}
	}
	if g := (Profile{FPS: 29.97}).GOP(); g != 60 {
		t.Errorf("GOP at 29.97 = %d", g)
	}
}

func TestKindOf(t *testing.T) {
	cases := map[string]SourceKind{
		"https://a/b.mp4":                  SourceFile,
		"https://a/b.M3U8?token=x":         SourceHLS,
		"https://a/index.m3u8#t":           SourceHLS,
		"https://a/m3u8/video.mp4?x=.m3u8": SourceFile,
	}
	for in, want := range cases {
		if got := KindOf(in); got != want {
			t.Errorf("KindOf(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestConcatListAndMetadata(t *testing.T) {
	got := ConcatList([]string{"/w/seg-000.mp4", "/w/it's.mp4"})
	want := "ffconcat version 1.0\nfile '/w/seg-000.mp4'\nfile '/w/it'\\''s.mp4'\n"
	if got != want {
		t.Errorf("ConcatList = %q, want %q", got, want)
	}
	meta := FFMetadata("T", []Chapter{{Title: "a=b;c#d\\e", Start: 0, End: 6}, {Title: "two", Start: 6, End: 11.0004}})
	wantMeta := ";FFMETADATA1\ntitle=T\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=6000\ntitle=a\\=b\\;c\\#d\\\\e\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=6000\nEND=11000\ntitle=two\n"
	if meta != wantMeta {
		t.Errorf("FFMetadata = %q, want %q", meta, wantMeta)
	}
}

func TestParseProbe(t *testing.T) {
	info, err := ParseProbe([]byte(`{"streams":[{"codec_type":"video","codec_name":"h264","width":640,"height":360,"r_frame_rate":"30/1"},
		{"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":1}],"format":{"duration":"12.500","format_name":"mov,mp4"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Duration: 12.5, Format: "mov,mp4", HasVideo: true, HasAudio: true, VideoCodec: "h264", AudioCodec: "aac", Width: 640, Height: 360, FrameRate: "30/1", SampleRate: 44100, Channels: 1}
	if info != want {
		t.Errorf("ParseProbe = %+v, want %+v", info, want)
	}
	if _, err := ParseProbe([]byte("nope")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestParseProgress(t *testing.T) {
	in := "frame=1\nout_time_us=1000000\nprogress=continue\nout_time_us=N/A\nout_time_us=3000000\nout_time_us=9000000\nprogress=end\n"
	var got []float64
	last := parseProgress(strings.NewReader(in), 4, func(p float64) { got = append(got, p) })
	want := []float64{0.25, 0.75, 1}
	if !slices.Equal(got, want) || last != 9 {
		t.Errorf("progress = %v, last %v; want %v, 9", got, last, want)
	}
}
