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
	loud := Profile{Width: 1920, Height: 1080, FPS: 59.94, Quality: 20, AudioBitrate: "192k", Loudness: -14, Fade: 0.5, Encoder: "libx265", Crop: true}
	cases := map[string][]string{
		"render-mp4": RenderArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 3945.25, Duration: 30, HasAudio: true, Profile: prof, Output: "/work/out.mp4"}),
		"render-hls-silent": RenderArgs(Render{Video: Input{URL: "https://cdn.example/v/index.m3u8", Kind: SourceHLS}, Start: 12, Duration: 6.5, HasAudio: false,
			Profile: Profile{Width: 1920, Height: 1080, FPS: 59.94, Quality: 20, AudioBitrate: "192k"}, Output: "/work/out.mp4"}),
		"render-page-title-fades": RenderArgs(Render{
			Video: Input{URL: "https://v.example/video.mp4", Headers: map[string]string{"User-Agent": "UA", "Referer": "https://page.example/\r\nX: 1"}},
			Audio: &Input{URL: "https://v.example/audio.m4a"}, Start: 30, Duration: 20, HasAudio: true,
			Profile: Profile{Width: 1080, Height: 1920, FPS: 30, Quality: 23, AudioBitrate: "160k", Fade: 0.5, Encoder: "h264_vaapi"},
			FadeIn:  true, FadeOut: true, TitleFile: "/w/title.txt", FontFile: "/fonts/it's.ttf", TitleSeconds: 4, Output: "/w/out.mp4"}),
		"measure-pass": MeasurePassArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 60, Duration: 45, HasAudio: true, Profile: loud, FadeIn: true}, "/w/video.mp4", "/w/audio.wav"),
		"apply-pass":   ApplyPassArgs(Render{Duration: 45, Profile: loud, FadeIn: true, FadeOut: true, Output: "/w/out.mp4"}, &Loudness{I: -27.61, TP: -4.47, LRA: 18.06, Thresh: -39.2, Offset: 0.58}, "/w/video.mp4", "/w/audio.wav"),
		"render-burn-title": RenderArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 8, Duration: 12, HasAudio: true, Profile: prof,
			FadeIn: true, TitleFile: "/w/title.txt", FontFile: "/usr/share/fonts/DejaVuSans.ttf", TitleSeconds: 4,
			SubtitlesFile: "/w/it's: a, [cut]; x\\y.srt", FontsDir: "/usr/share/fonts", Output: "/w/out.mp4"}),
		// The concat's: the montage's one audio encode, fed each segment's
		// audio in turn, then the mux of copied video and that audio.
		"montage-audio": MontageAudioArgs("160k", "/w/audio.m4a"),
		"segment-pcm":   SegmentPCMArgs("/w/seg-001.mp4", 961024),
		"mux":           MuxMontageArgs("/w/list.ffconcat", "/w/audio.m4a", "/w/chapters.ffmeta", "/w/out.mp4", false),
		"mux-avc3":      MuxMontageArgs("/w/list.ffconcat", "/w/audio.m4a", "/w/chapters.ffmeta", "/w/out.mp4", true),
		// The copying cuts' commands (cut.go).
		"cut-probe": CutProbeArgs(Input{URL: "https://cdn.example/v/index.m3u8", Kind: SourceHLS}, 2.3, 14.5),
		"cut-copy":  CopyPieceArgs(Input{URL: "https://cdn.example/vod.mp4"}, 4, 5, 480, "/w/piece-1.ts"),
		"cut-head": EncodePieceArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 3.3, Duration: 0.7, Whole: 10,
			Profile: Profile{Width: 1920, Height: 1080, FPS: 60, Quality: 23, Fade: 0.5}, FadeIn: true}, 42, 2, 0, "/w/piece-0.ts"),
		"cut-tail-at-key": EncodePieceArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 12, Duration: 1.3, Whole: 10,
			Profile: Profile{Width: 1920, Height: 1080, FPS: 60, Quality: 23, Fade: 0.5}, FadeOut: true}, 78, 0, 13, "/w/piece-2.ts"),
		"cut-audio-measure": SegmentAudioArgs(Render{Video: Input{URL: "https://cdn.example/vod.mp4"}, Start: 3.3, Duration: 10, HasAudio: true, Profile: loud}, "/w/audio.wav", true),
		"cut-join": JoinPiecesArgs(Render{Duration: 10, Profile: loud, FadeIn: true, FadeOut: true, Output: "/w/out.mp4"},
			&Loudness{I: -20, TP: -9, LRA: 3, Thresh: -30}, "/w/pieces.ffconcat", "/w/audio.wav"),
		"thumbnail":          ThumbnailArgs("/w/out.mp4", 3.5, false, "/w/thumbnail.jpg"),
		"thumbnail-keyframe": ThumbnailArgs("/w/out.mp4", 3.5, true, "/w/thumbnail.jpg"),
	}
	for name, args := range cases {
		golden(t, name, args)
	}
	for _, enc := range Candidates() {
		golden(t, "encoder-"+enc, EncoderArgs(Profile{FPS: 30, Quality: 23, Encoder: enc}))
	}
	for enc, want := range map[string]string{"libx264": "medium", "libx265": "medium", "libsvtav1": "6", "h264_nvenc": "p5"} {
		args := EncoderArgs(Profile{FPS: 30, Quality: 23, Encoder: enc, Preset: "medium"})
		if i := slices.Index(args, "-preset"); i < 0 || args[i+1] != want {
			t.Errorf("%s with preset medium: %v, want -preset %s", enc, args, want)
		}
	}
}

// The safety rules hold for every source kind and builder, whatever the
// golden files say.
func TestRenderArgsRules(t *testing.T) {
	for _, kind := range []SourceKind{SourceFile, SourceHLS} {
		r := Render{Video: Input{URL: "https://x/y", Kind: kind}, Audio: &Input{URL: "https://x/a", Kind: kind}, Start: 5, Duration: 2, HasAudio: true, Profile: prof, Output: "o.mp4"}
		builders := map[string][]string{"render": RenderArgs(r), "measure": MeasurePassArgs(r, "v.mp4", "a.wav"),
			"cut audio": SegmentAudioArgs(r, "a.wav", true), "cut copy": CopyPieceArgs(r.Video, 4, 5, 60, "p.ts"),
			"cut edge": EncodePieceArgs(r, 60, 2, 0, "p.ts"), "cut edge at key": EncodePieceArgs(r, 60, 2, 6, "p.ts")}
		wantInputs := map[string]int{"cut copy": 1, "cut edge": 1, "cut edge at key": 1}
		for name, args := range builders {
			if args[0] != "-nostdin" {
				t.Errorf("%s kind %d: -nostdin is not first", name, kind)
			}
			tt := slices.Index(args, "-t")
			inputs, prev := 0, 0
			for i, a := range args {
				if a != "-i" || !strings.HasPrefix(args[i+1], "https://") {
					continue
				}
				inputs++
				if !slices.Contains(args[prev:i], "-ss") || tt >= 0 && i > tt {
					t.Errorf("%s kind %d: input %s lacks its own -ss before -i (and -t after): %v", name, kind, args[i+1], args)
				}
				prev = i
				wl := slices.Index(args[:i], "-protocol_whitelist")
				if wl < 0 {
					t.Fatalf("%s kind %d: no protocol whitelist before %s", name, kind, args[i+1])
				}
				for _, banned := range []string{"file", "concat", "subfile", "data", "pipe"} {
					if slices.Contains(strings.Split(args[wl+1], ","), banned) {
						t.Errorf("%s kind %d: whitelist allows %s", name, kind, banned)
					}
				}
			}
			want := 2 // the video and the separate audio
			if n, ok := wantInputs[name]; ok {
				want = n
			}
			if inputs != want {
				t.Errorf("%s kind %d: %d network inputs, want %d", name, kind, inputs, want)
			}
		}
	}
}

func TestHeadersCannotBeSmuggled(t *testing.T) {
	args := Input{URL: "https://x", Headers: map[string]string{"Referer": "a\r\nCookie: x", "Bad\r\nName": "v"}}.options()
	h := args[len(args)-1]
	if strings.Count(h, "\r\n") != 1 || strings.Contains(h, "Bad") {
		t.Errorf("headers = %q: one header line expected", h)
	}
}

func TestYouTubeChapters(t *testing.T) {
	cases := []struct {
		name string
		in   []Chapter
		want string
	}{
		{"plain", []Chapter{{"A", 0, 30}, {"B", 30, 75.5}, {"C", 75.5, 130}}, "0:00 A\n0:30 B\n1:15 C\n"},
		{"hours", []Chapter{{"A", 0, 30}, {"B", 30, 3700}, {"C", 3700, 3760}}, "0:00:00 A\n0:00:30 B\n1:01:40 C\n"},
		{"short middle merges forward", []Chapter{{"A", 0, 20}, {"B", 20, 25}, {"C", 25, 60}}, "0:00 A\n0:20 B / C\n"},
		{"short first merges forward", []Chapter{{"Intro", 0.2, 5}, {"A", 5, 40}}, "0:00 Intro / A\n"},
		{"short last merges back", []Chapter{{"A", 0, 30}, {"Outro", 30, 36}}, "0:00 A / Outro\n"},
		{"flooring counts", []Chapter{{"A", 0, 10.5}, {"B", 10.5, 19.9}, {"C", 19.9, 40}}, "0:00 A\n0:10 B / C\n"},
		{"one", []Chapter{{"Only", 0, 3}}, "0:00 Only\n"},
	}
	for _, c := range cases {
		if got := FormatYouTube(YouTubeChapters(c.in)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseEBUR128(t *testing.T) {
	log := "[Parsed_ebur128_3 @ 0x55] t: 0.1  M: -120.7 S: -120.7     I: -70.0 LUFS\n" +
		"[Parsed_ebur128_3 @ 0x55] Summary:\n\n  Integrated loudness:\n    I:         -27.6 LUFS\n    Threshold: -39.2 LUFS\n\n" +
		"  Loudness range:\n    LRA:        18.1 LU\n    Threshold: -49.2 LUFS\n    LRA low:   -40.0 LUFS\n    LRA high:  -21.9 LUFS\n\n" +
		"  True peak:\n    Peak:       -4.5 dBFS\nvideo:1kB audio:2kB\n"
	m, ok, err := ParseEBUR128(log)
	if err != nil || !ok || m != (Loudness{I: -27.6, TP: -4.5, LRA: 18.1, Thresh: -39.2}) {
		t.Errorf("ParseEBUR128 = %+v, %v, %v", m, ok, err)
	}
	silent := strings.Replace(strings.Replace(log, "-27.6 LUFS", "-70.0 LUFS", 1), "-4.5 dBFS", "-inf dBFS", 1)
	if _, ok, err := ParseEBUR128(silent); ok || err != nil {
		t.Errorf("silence: ok %v err %v; want not ok, no error", ok, err)
	}
	for _, bad := range []string{"ffmpeg said nothing", log[:strings.Index(log, "True peak")]} {
		if _, _, err := ParseEBUR128(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// One gain when the peak allows it; loudnorm's dynamic levelling when the
// gain would push the true peak past the limit.
func TestLevelFilter(t *testing.T) {
	p := Profile{Loudness: -16}
	if f := LevelFilter(p, &Loudness{I: -22.5, TP: -9, LRA: 3, Thresh: -33}); f != "volume=6.50dB," {
		t.Errorf("linear: %q", f)
	}
	if f := LevelFilter(p, &Loudness{I: -25, TP: -6, LRA: 3, Thresh: -35}); !strings.HasPrefix(f, "loudnorm=I=-16:TP=-1.5:LRA=11:measured_I=-25:measured_TP=-6") {
		t.Errorf("over the peak: %q", f)
	}
	if f := LevelFilter(p, nil); f != "" {
		t.Errorf("nothing measured: %q", f)
	}
}

func TestParseFilters(t *testing.T) {
	out := []byte("Filters:\n  T.. = Timeline support\n  A = Audio input/output\n  | = Source or sink filter\n" +
		" ... abench            A->A       Benchmark part of a filtergraph.\n" +
		" T.C drawtext          V->V       Draw text on top of video frames.\n" +
		" ... subtitles         V->V       Render text subtitles onto input video using the libass library.\n" +
		" ... anullsrc          |->A       Null audio source, return empty audio frames.\n")
	got := ParseFilters(out)
	if !got["subtitles"] || !got["drawtext"] || !got["anullsrc"] || !got["abench"] || len(got) != 4 {
		t.Errorf("ParseFilters = %v", got)
	}
}

func TestParseEncodersAndRate(t *testing.T) {
	out := []byte("Encoders:\n V..... = Video\n ------\n V....D libx264              libx264 H.264\n V....D h264_nvenc           NVIDIA NVENC\n A....D aac                  AAC\n")
	got := ParseEncoders(out)
	if !got["libx264"] || !got["h264_nvenc"] || !got["aac"] || got["="] || len(got) != 3 {
		t.Errorf("ParseEncoders = %v", got)
	}
	for in, want := range map[string]float64{"30000/1001": 29.97, "25/1": 25, "0/0": 0, "x": 0, "50": 50} {
		if got := ParseRate(in); got != want {
			t.Errorf("ParseRate(%q) = %v, want %v", in, got, want)
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

func TestProofKeyAndStore(t *testing.T) {
	k := ProofKey("/usr/bin/ffmpeg", "5.1.8", "", []string{"/dev/dri/renderD128"}, []string{"libx264", "h264_vaapi"})
	for name, other := range map[string]string{
		"version":    ProofKey("/usr/bin/ffmpeg", "6.0", "", []string{"/dev/dri/renderD128"}, []string{"libx264", "h264_vaapi"}),
		"gpu":        ProofKey("/usr/bin/ffmpeg", "5.1.8", "RTX 4070", []string{"/dev/dri/renderD128"}, []string{"libx264", "h264_vaapi"}),
		"devices":    ProofKey("/usr/bin/ffmpeg", "5.1.8", "", nil, []string{"libx264", "h264_vaapi"}),
		"candidates": ProofKey("/usr/bin/ffmpeg", "5.1.8", "", []string{"/dev/dri/renderD128"}, []string{"libx264"}),
	} {
		if other == k {
			t.Errorf("a new %s keeps the proof's key", name)
		}
	}
	p := filepath.Join(t.TempDir(), "proof.json")
	if _, ok := LoadProof(p, k); ok {
		t.Fatal("a proof from nowhere")
	}
	if err := SaveProof(p, Proof{Key: k, Encoders: []string{"libx264"}}); err != nil {
		t.Fatal(err)
	}
	if enc, ok := LoadProof(p, k); !ok || !slices.Equal(enc, []string{"libx264"}) {
		t.Fatalf("load: %v %v", enc, ok)
	}
	if _, ok := LoadProof(p, "other"); ok {
		t.Fatal("a proof under another key")
	}
}
