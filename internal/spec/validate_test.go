package spec

import (
	"errors"
	"strings"
	"testing"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func okSpec() *montagev1.JobSpec {
	return &montagev1.JobSpec{
		Name:       "ok",
		Highlights: []*montagev1.Highlight{{Url: "https://cdn.example/vod.mp4", At: "1:00", Duration: "30", Title: "one"}},
	}
}

func TestValidateDefaults(t *testing.T) {
	r, err := Validate(&montagev1.JobSpec{Highlights: []*montagev1.Highlight{{Url: "http://h/v.m3u8", At: "5"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Clips[0].Duration != DefaultDuration || r.Clips[0].Start != 5 {
		t.Errorf("clip = %+v, want start 5 and the default duration", r.Clips[0])
	}
	want := Profile{Width: 1280, Height: 720, FPS: 30, VideoCodec: "h264", Quality: 23, AudioBitrate: 160000,
		Fit: FitLetterbox, Loudness: -14, Fade: 0.5, HWAccel: HWAuto, Preset: DefaultPreset}
	if r.Profile != want {
		t.Errorf("profile = %+v, want %+v", r.Profile, want)
	}
}

func TestValidateErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(s *montagev1.JobSpec)
		field string
		words string
	}{
		{"nil highlights", func(s *montagev1.JobSpec) { s.Highlights = nil }, "highlights", "at least one"},
		{"negative duration", func(s *montagev1.JobSpec) { s.Highlights[0].Duration = "-5" }, "highlights[0].duration", "not negative"},
		{"zero duration", func(s *montagev1.JobSpec) { s.Highlights[0].Duration = "0" }, "highlights[0].duration", "between 1 and 600"},
		{"long duration", func(s *montagev1.JobSpec) { s.Highlights[0].Duration = "10m1s" }, "highlights[0].duration", "between 1 and 600"},
		{"bad at", func(s *montagev1.JobSpec) { s.Highlights[0].At = "soon" }, "highlights[0].at", "not a timestamp"},
		{"missing at", func(s *montagev1.JobSpec) { s.Highlights[0].At = "" }, "highlights[0].at", "required"},
		{"file scheme", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "file:///etc/passwd" }, "highlights[0].url", `scheme "file"`},
		{"no scheme", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "cdn.example/v.mp4" }, "highlights[0].url", "no scheme"},
		{"no host", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "http:///v.mp4" }, "highlights[0].url", "no host"},
		{"concat scheme", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "concat:a.mp4|b.mp4" }, "highlights[0].url", "not supported"},
		{"too many", func(s *montagev1.JobSpec) {
			for len(s.Highlights) <= MaxHighlights {
				s.Highlights = append(s.Highlights, s.Highlights[0])
			}
		}, "highlights", "limit is 500"},
		{"too big", func(s *montagev1.JobSpec) { s.Name = strings.Repeat("n", MaxSpecBytes) }, "spec", "1 MiB"},
		{"odd size", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Resolution: "641x360"} }, "profile.resolution", "even"},
		{"size words", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Resolution: "hd"} }, "profile.resolution", "WIDTHxHEIGHT"},
		{"fps", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Fps: 500} }, "profile.fps", "between 1 and 120"},
		{"codec", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{VideoCodec: "mpeg2"} }, "profile.video_codec", "not supported"},
		{"quality", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Quality: 60} }, "profile.quality", "0 and 51"},
		{"bitrate", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{AudioBitrate: "lots"} }, "profile.audio_bitrate", "bitrate"},
		{"fit", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Fit: "stretch"} }, "profile.fit", "letterbox or crop"},
		{"loudness", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Loudness: "+3"} }, "profile.loudness", "-70 and -5"},
		{"loudness words", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Loudness: "loud"} }, "profile.loudness", "off"},
		{"fade", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Fade: "9"} }, "profile.fade", "between 0 and 5"},
		{"hwaccel", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Hwaccel: "cuda"} }, "profile.hwaccel", "nvenc"},
		{"encoder", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Encoder: "mpeg4"} }, "profile.encoder", "not an encoder"},
		{"encoder codec", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Encoder: "hevc_nvenc"} }, "profile.encoder", "does not encode h264"},
		{"source type", func(s *montagev1.JobSpec) { s.Highlights[0].SourceType = "torrent" }, "highlights[0].source_type", "auto, file, hls, page"},
		{"s3 as page", func(s *montagev1.JobSpec) {
			s.Highlights[0].Url, s.Highlights[0].SourceType = "s3://b/k.mp4", "page"
		}, "highlights[0].source_type", "s3 objects are files"},
		{"s3 without key", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "s3://bucket" }, "highlights[0].url", "s3://bucket/key"},
		{"ftp scheme", func(s *montagev1.JobSpec) { s.Highlights[0].Url = "ftp://h/v.mp4" }, "highlights[0].url", `scheme "ftp"`},
		{"intro url", func(s *montagev1.JobSpec) { s.Intro = &montagev1.Highlight{Url: "file:///intro.mp4"} }, "intro.url", `scheme "file"`},
		{"outro duration", func(s *montagev1.JobSpec) { s.Outro = &montagev1.Highlight{Url: "http://h/o.mp4", Duration: "0"} }, "outro.duration", "between 1"},
		{"chunk", func(s *montagev1.JobSpec) { s.ChunkSeconds = 2 }, "chunk_seconds", "between 10 and 600"},
		{"title", func(s *montagev1.JobSpec) { s.Highlights[0].Title = strings.Repeat("t", 201) }, "highlights[0].title", "200"},
		{"priority", func(s *montagev1.JobSpec) { s.Priority = 1000 }, "priority", "-100 and 100"},
		{"preset", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Preset: "lightning"} }, "profile.preset", "ultrafast, superfast, veryfast"},
		{"cut word", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Cut: "fast"} }, "profile.cut", "exact, keyframe or smart"},
		{"cut hevc", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Cut: "smart", VideoCodec: "hevc"} }, "profile.cut", "video_codec must be h264"},
		{"cut nvenc", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Cut: "smart", Hwaccel: "nvenc"} }, "profile.hwaccel", "auto or none"},
		{"keyframe fade", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Cut: "keyframe", Fade: "0.5"} }, "profile.fade", "cannot fade"},
		{"keyframe title", func(s *montagev1.JobSpec) { s.Profile = &montagev1.RenderProfile{Cut: "keyframe", TitleOverlay: true} }, "profile.title_overlay", "cannot draw a title"},
		{"keyframe burn", func(s *montagev1.JobSpec) {
			s.Profile, s.Transcribe, s.Subtitles = &montagev1.RenderProfile{Cut: "keyframe"}, true, "burn"
		}, "subtitles", "cut: keyframe copies"},
		{"burn without transcribe", func(s *montagev1.JobSpec) { s.Subtitles = "burn" }, "subtitles", "needs transcribe: true"},
		{"subtitles word", func(s *montagev1.JobSpec) { s.Transcribe, s.Subtitles = true, "hardsub" }, "subtitles", "sidecar, embed, burn or none"},
		{"language", func(s *montagev1.JobSpec) { s.Transcribe, s.Language = true, "english" }, "language", "two-letter"},
		{"six hours", func(s *montagev1.JobSpec) {
			s.Highlights = nil
			for i := 0; i < 37; i++ { // 37 × 10 min: 6h10m
				s.Highlights = append(s.Highlights, &montagev1.Highlight{Url: "https://cdn.example/v.mp4", At: "1", Duration: "600"})
			}
		}, "highlights", "limit is 6:00:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := okSpec()
			c.edit(s)
			_, err := Validate(s)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate error = %v, want a FieldError", err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Reason, c.words) {
				t.Errorf("got %q, want field %q with %q", err, c.field, c.words)
			}
		})
	}
	if _, err := Validate(okSpec()); err != nil {
		t.Errorf("the valid base spec failed: %v", err)
	}
}

// Cut modes resolve with what they imply: keyframe drops the default fade,
// both pick software x264, exact stays "" so cache keys do not change.
func TestResolveCut(t *testing.T) {
	cases := []struct {
		in      *montagev1.RenderProfile
		cut, hw string
		fade    float64
		mode    string
	}{
		{&montagev1.RenderProfile{}, "", HWAuto, DefaultFade, CutExact},
		{&montagev1.RenderProfile{Cut: "EXACT"}, "", HWAuto, DefaultFade, CutExact},
		{&montagev1.RenderProfile{Cut: "keyframe"}, CutKeyframe, HWNone, 0, CutKeyframe},
		{&montagev1.RenderProfile{Cut: "keyframe", Fade: "0"}, CutKeyframe, HWNone, 0, CutKeyframe},
		{&montagev1.RenderProfile{Cut: " Smart ", Hwaccel: "none"}, CutSmart, HWNone, DefaultFade, CutSmart},
	}
	for _, c := range cases {
		p, err := ResolveProfile(c.in)
		if err != nil {
			t.Fatalf("%+v: %v", c.in, err)
		}
		if p.Cut != c.cut || p.HWAccel != c.hw || p.Fade != c.fade || p.CutMode() != c.mode {
			t.Errorf("%+v resolved to cut %q hwaccel %q fade %g mode %s", c.in, p.Cut, p.HWAccel, p.Fade, p.CutMode())
		}
		back, err := ResolveProfile(p.ToProto())
		if err != nil || back != p {
			t.Errorf("%+v does not survive the wire: %+v, %v", p, back, err)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("https://a.example/v.mp4", "1:00", "30", "1280x720", 30.0, int32(23), "160k")
	f.Add("http://h/v.m3u8", "1h5m", "", "", 0.0, int32(0), "")
	f.Add("file:///etc/passwd", "-1", "0", "1x1", -1.0, int32(99), "1k")
	f.Fuzz(func(t *testing.T, url, at, dur, res string, fps float64, q int32, ab string) {
		s := &montagev1.JobSpec{
			Profile:    &montagev1.RenderProfile{Resolution: res, Fps: fps, Quality: q, AudioBitrate: ab},
			Highlights: []*montagev1.Highlight{{Url: url, At: at, Duration: dur}},
		}
		r, err := Validate(s)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		c := r.Clips[0]
		if c.Duration < MinDuration || c.Duration > MaxDuration || c.Start < 0 {
			t.Fatalf("accepted clip %+v outside the limits", c)
		}
		if CheckSourceURL(c.URL) != nil {
			t.Fatalf("accepted url %q", c.URL)
		}
		if r.Profile.Width%2 != 0 || r.Profile.Height%2 != 0 || r.Profile.FPS < 1 || r.Profile.FPS > 120 {
			t.Fatalf("accepted profile %+v", r.Profile)
		}
	})
}

func TestSourceTypeOf(t *testing.T) {
	cases := []struct{ url, given, want string }{
		{"https://cdn.example/vod.mp4", "", SourceFile},
		{"https://cdn.example/vod", "auto", SourceFile},
		{"https://usher.example/index.m3u8?sig=1", "", SourceHLS},
		{"https://www.youtube.com/watch?v=abc", "", SourcePage},
		{"https://youtu.be/abc", "", SourcePage},
		{"https://m.twitch.tv/videos/1", "", SourcePage},
		{"https://clips.twitch.tv/Name", "", SourcePage},
		{"http://127.0.0.1:8080/page.html", "", SourcePage},
		{"s3://bucket/vods/a.mp4", "", SourceFile},
		{"http://127.0.0.1:8080/media", "page", SourcePage},
		{"http://127.0.0.1:8080/list", "HLS", SourceHLS},
	}
	for _, c := range cases {
		got, err := SourceTypeOf(c.url, c.given)
		if err != nil || got != c.want {
			t.Errorf("SourceTypeOf(%q, %q) = %q, %v; want %q", c.url, c.given, got, err, c.want)
		}
	}
}

func TestEncoders(t *testing.T) {
	cases := []struct{ family, codec, name string }{
		{HWNone, "h264", "libx264"}, {HWNone, "hevc", "libx265"}, {HWNone, "av1", "libsvtav1"},
		{"nvenc", "h264", "h264_nvenc"}, {"vaapi", "hevc", "hevc_vaapi"}, {"qsv", "av1", "av1_qsv"},
	}
	for _, c := range cases {
		if got := EncoderFor(c.family, c.codec); got != c.name {
			t.Errorf("EncoderFor(%s, %s) = %s, want %s", c.family, c.codec, got, c.name)
		}
		codec, fam, ok := ParseEncoder(c.name)
		if !ok || codec != c.codec || fam != c.family {
			t.Errorf("ParseEncoder(%s) = %s, %s, %v", c.name, codec, fam, ok)
		}
	}
	for _, bad := range []string{"", "mpeg4", "h264_cuda", "vp9_vaapi", "libx264_nvenc"} {
		if _, _, ok := ParseEncoder(bad); ok {
			t.Errorf("ParseEncoder(%q) accepted", bad)
		}
	}
	if EncoderFamily("hevc_nvenc") != "nvenc" || EncoderFamily("libx264") != "" {
		t.Error("EncoderFamily")
	}
}

func TestValidateResolvesIntroOutroAndProfile(t *testing.T) {
	s := okSpec()
	s.Intro = &montagev1.Highlight{Url: "https://cdn.example/intro.mp4", Duration: "8"}
	s.Outro = &montagev1.Highlight{Url: "s3://bucket/outro.mp4", Title: "Bye"}
	s.Profile = &montagev1.RenderProfile{Fit: "crop", Loudness: "-23", Fade: "0", VideoCodec: "HEVC", Hwaccel: "none", TitleOverlay: true}
	r, err := Validate(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Intro == nil || r.Intro.Start != 0 || r.Intro.Duration != 8 || r.Intro.Title != "Intro" {
		t.Errorf("intro = %+v", r.Intro)
	}
	if r.Outro == nil || r.Outro.Duration != DefaultDuration || r.Outro.Title != "Bye" || r.Outro.SourceType != SourceFile {
		t.Errorf("outro = %+v", r.Outro)
	}
	p := r.Profile
	if p.Fit != FitCrop || p.Loudness != -23 || p.Fade != 0 || p.VideoCodec != "hevc" || p.HWAccel != HWNone || !p.TitleOverlay {
		t.Errorf("profile = %+v", p)
	}
	// The wire form resolves to the same profile (agents receive it).
	back, err := ResolveProfile(p.ToProto())
	if err != nil || back != p {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, p)
	}
	off, err := ResolveProfile(&montagev1.RenderProfile{Loudness: "off"})
	if err != nil || !off.LoudnessOff {
		t.Errorf("loudness off = %+v, %v", off, err)
	}
	if back, err := ResolveProfile(off.ToProto()); err != nil || back != off {
		t.Errorf("off round trip = %+v, %v", back, err)
	}
}
