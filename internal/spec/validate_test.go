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
	want := Profile{Width: 1280, Height: 720, FPS: 30, VideoCodec: "h264", Quality: 23, AudioBitrate: 160000}
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
		{"title", func(s *montagev1.JobSpec) { s.Highlights[0].Title = strings.Repeat("t", 201) }, "highlights[0].title", "200"},
		{"priority", func(s *montagev1.JobSpec) { s.Priority = 1000 }, "priority", "-100 and 100"},
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
