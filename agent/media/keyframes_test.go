package media

import (
	"math"
	"strings"
	"testing"
)

func TestParseKeyframes(t *testing.T) {
	// A playlist's timestamps start at its first PTS (1.42 s here).
	hls := `{"frames": [{"pts_time": "31.421333"}, {"pts_time": "29.421333"}, {"pts_time": "49.421333"}, {"pts_time": "N/A"}],
		"streams": [{"start_time": "1.421333"}]}`
	got, err := ParseKeyframes([]byte(hls))
	want := []float64{28, 30, 48}
	if err != nil || len(got) != len(want) {
		t.Fatalf("ParseKeyframes = %v, %v; want %v", got, err, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			t.Fatalf("ParseKeyframes = %v, want %v", got, want)
		}
	}
	if got, err := ParseKeyframes([]byte(`{"frames": [], "streams": [{"start_time": "0.000000"}]}`)); err != nil || len(got) != 0 {
		t.Errorf("no keyframes: %v %v", got, err)
	}
	if _, err := ParseKeyframes([]byte("nope")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestSnapToKeyframe(t *testing.T) {
	kf := []float64{10, 12, 14, 30}
	cases := []struct {
		name               string
		edge, hlStart, fps float64
		keyframes          []float64
		want               float64
	}{
		{"next keyframe, on the grid", 12.9333, 4.6, 30, kf, 14},
		{"a keyframe at the edge stays", 12, 0, 30, kf, 12},
		{"onto the grid from the highlight start", 12.5, 0.01, 25, []float64{13.011}, 0.01 + 13.0},
		{"none within the window keeps the edge", 15, 0, 30, kf, 15},
		{"none at all keeps the edge", 7.5, 0, 30, nil, 7.5},
	}
	for _, c := range cases {
		if got := SnapToKeyframe(c.edge, c.hlStart, c.fps, c.keyframes); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: SnapToKeyframe = %v, want %v", c.name, got, c.want)
		}
		// Whatever happens, the edge is a whole number of frames from the
		// highlight's start, so chunk lengths are whole frames.
		got := SnapToKeyframe(c.edge, c.hlStart, c.fps, c.keyframes)
		if f := (got - c.hlStart) * c.fps; math.Abs(f-math.Round(f)) > 1e-6 {
			t.Errorf("%s: %v is %v frames from the start", c.name, got, f)
		}
	}
}

func TestKeyframeArgsReadOnlyTheWindows(t *testing.T) {
	args := strings.Join(KeyframeArgs(Input{URL: "https://x/v.m3u8", Kind: SourceHLS}, []float64{12.5, 30}), " ")
	for _, want := range []string{"-read_intervals 12.500000%+10.000000,30.000000%+10.000000", "-skip_frame nokey", "-protocol_whitelist http,https,tcp,tls,crypto -f hls"} {
		if !strings.Contains(args, want) {
			t.Errorf("%s lacks %q", args, want)
		}
	}
}
