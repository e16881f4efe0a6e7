package media

import (
	"math"
	"strings"
	"testing"
)

// stream makes a 60-fps packet list in decode order: GOPs of gop frames
// with B-frames reordered (I, then P before the two Bs it follows), from
// frame 0 to frames. open gives each keyframe after the first two leading
// Bs decoded after it that show before it.
func stream(frames, gop int, open bool) []Packet {
	const fps = 60.0
	var pk []Packet
	d := 0
	add := func(f int, key bool) {
		pk = append(pk, Packet{PTS: float64(f) / fps, DTS: float64(d-2) / fps, Key: key})
		d++
	}
	for g := 0; g < frames; g += gop {
		end := min(g+gop, frames)
		add(g, true)
		if open && g > 0 {
			add(g-2, false)
			add(g-1, false)
		}
		f := g + 1
		last := end
		if open && end < frames {
			last = end - 2 // the next GOP's leading frames
		}
		for ; f+2 < last; f += 3 {
			add(f+2, false)
			add(f, false)
			add(f+1, false)
		}
		for ; f < last; f++ {
			add(f, false)
		}
	}
	return pk
}

func TestStreamFixtureShowsEveryFrameOnce(t *testing.T) {
	for _, open := range []bool{false, true} {
		pk := stream(600, 120, open)
		seen := map[float64]bool{}
		for _, p := range pk {
			if seen[p.PTS] {
				t.Fatalf("open=%v: frame at %.4f twice", open, p.PTS)
			}
			seen[p.PTS] = true
		}
		if len(seen) != 600 {
			t.Fatalf("open=%v: %d frames", open, len(seen))
		}
	}
}

func TestPlanKeyframeCut(t *testing.T) {
	pk := stream(1200, 120, false) // 20 s, a keyframe every 2 s
	cases := []struct {
		name            string
		start, duration float64
		readTo          float64
		from            float64
		frames          int
		err             string
	}{
		{"inside GOPs", 3.3, 10, 30, 2, 720, ""},
		{"on keyframes", 4, 8, 30, 4, 480, ""},
		{"to the end of the source", 15.5, 10, 40, 14, 360, ""},
		{"window cut short", 15.5, 10, 21, 0, 0, "no keyframe in the 10 s after"},
	}
	for _, c := range cases {
		p, err := PlanKeyframeCut(pk, c.start, c.duration, c.readTo)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		seconds := float64(c.frames) / 60
		if c.name == "to the end of the source" {
			seconds = 0 // no keyframe ends it: frames at the rate
		}
		if p.Mode != CutCopied || p.Start != c.from || p.Frames != c.frames || p.Copied != c.frames || len(p.Pieces) != 1 || !p.Pieces[0].Copy ||
			math.Abs(p.Seconds-seconds) > 1e-9 ||
			math.Abs(p.Pieces[0].Seek-(c.from+1)) > 1e-9 {
			t.Errorf("%s: %+v, want a copy of %d frames from %g", c.name, p, c.frames, c.from)
		}
	}
	// A variable frame rate: the length is the keyframes' distance, not
	// the frames at a nominal rate (one frame of the span lasts 0.5 s).
	var vfr []Packet
	for _, q := range pk {
		if q.PTS <= 4 || q.PTS >= 4.5 {
			vfr = append(vfr, q)
		}
	}
	if p, err := PlanKeyframeCut(vfr, 3.3, 10, 30); err != nil || p.Seconds != 12 || p.Frames != 720-29 {
		t.Errorf("variable frame rate: %+v, %v; want 12 s in 691 frames", p, err)
	}
	if _, err := PlanKeyframeCut(stream(1200, 120, true), 5, 5, 30); err == nil || !strings.Contains(err.Error(), "open GOPs") {
		t.Errorf("open GOPs: %v", err)
	}
	if _, err := PlanKeyframeCut(pk[200:], 1, 5, 30); err == nil || !strings.Contains(err.Error(), "no keyframe in the 10 s before") {
		t.Errorf("no keyframe before: %v", err)
	}
}

func TestPlanSmartCut(t *testing.T) {
	pk := stream(1200, 120, false)
	cases := []struct {
		name     string
		start    float64
		frames   int
		edges    SmartEdges
		mode     string
		pieces   []Piece
		note     string
		startsAt float64
	}{
		{"head, GOPs and tail", 3.3, 600, SmartEdges{}, CutSmart,
			[]Piece{{Start: 3.3, Frames: 42}, {Copy: true, Start: 4, Frames: 480, Seek: 5}, {Start: 12, Frames: 78, AtKey: true, Seek: 13}}, "", 3.3},
		{"fades push the copy inwards", 4, 600, SmartEdges{Head: 0.5, Tail: 0.5}, CutSmart,
			[]Piece{{Start: 4, Frames: 120, AtKey: true, Seek: 5}, {Copy: true, Start: 6, Frames: 360, Seek: 7}, {Start: 12, Frames: 120, AtKey: true, Seek: 13}}, "", 4},
		{"on keyframes exactly", 4, 480, SmartEdges{}, CutSmart,
			[]Piece{{Copy: true, Start: 4, Frames: 480, Seek: 5}}, "", 4},
		{"between frames starts at the next", 3.305, 60 * 5, SmartEdges{}, CutSmart,
			[]Piece{{Start: 3.3 + 1.0/60, Frames: 41}, {Copy: true, Start: 4, Frames: 240, Seek: 5}, {Start: 8, Frames: 19, AtKey: true, Seek: 9}}, "", 3.3 + 1.0/60},
		{"no whole GOP", 4.5, 150, SmartEdges{}, CutEncoded, nil, "no whole GOP", 4.5},
	}
	for _, c := range cases {
		p := PlanSmartCut(pk, c.start, c.frames, 60, c.edges)
		if p.Mode != c.mode || !strings.Contains(p.Note, c.note) || p.Frames != c.frames {
			t.Errorf("%s: mode %s note %q frames %d", c.name, p.Mode, p.Note, p.Frames)
			continue
		}
		if c.mode == CutEncoded {
			if len(p.Pieces) != 1 || p.Pieces[0].Copy || p.Pieces[0].Frames != c.frames {
				t.Errorf("%s: %+v, want one encoded piece", c.name, p.Pieces)
			}
			continue
		}
		if len(p.Pieces) != len(c.pieces) {
			t.Fatalf("%s: pieces %+v, want %+v", c.name, p.Pieces, c.pieces)
		}
		sum := 0
		for i, pc := range p.Pieces {
			w := c.pieces[i]
			if pc.Copy != w.Copy || pc.AtKey != w.AtKey || math.Abs(pc.Seek-w.Seek) > 1e-9 || pc.Frames != w.Frames || pc.Start-w.Start > 1e-9 || w.Start-pc.Start > 1e-9 {
				t.Errorf("%s: piece %d = %+v, want %+v", c.name, i, pc, w)
			}
			sum += pc.Frames
		}
		if sum != c.frames || p.Start-c.startsAt > 1e-9 || c.startsAt-p.Start > 1e-9 {
			t.Errorf("%s: pieces add to %d frames from %.4f, want %d from %.4f", c.name, sum, p.Start, c.frames, c.startsAt)
		}
	}
	if p := PlanSmartCut(stream(1200, 120, true), 3.3, 600, 60, SmartEdges{}); p.Mode != CutEncoded || !strings.Contains(p.Note, "open GOPs") {
		t.Errorf("open GOPs: %+v", p)
	}
	// A dropped frame in a copied GOP (variable frame rate) would shift
	// every frame after it: re-encode instead.
	var vfr []Packet
	for _, q := range pk {
		if q.PTS != 5 {
			vfr = append(vfr, q)
		}
	}
	if p := PlanSmartCut(vfr, 3.3, 600, 60, SmartEdges{}); p.Mode != CutEncoded || !strings.Contains(p.Note, "not constant") {
		t.Errorf("a missing frame: %+v", p)
	}
}

func TestSmartMismatch(t *testing.T) {
	prof := Profile{Width: 1920, Height: 1080, FPS: 60}
	ok := VideoParams{Codec: "h264", Profile: "High", Width: 1920, Height: 1080, PixFmt: "yuv420p", SAR: "1:1", FrameRate: "60/1", FieldOrder: "progressive", Reorder: 2}
	cases := []struct {
		edit func(*VideoParams)
		want string
	}{
		{func(*VideoParams) {}, ""},
		{func(v *VideoParams) { v.Codec = "hevc" }, "hevc, not H.264"},
		{func(v *VideoParams) { v.Width, v.Height = 1280, 720 }, "1280x720, the montage 1920x1080"},
		{func(v *VideoParams) { v.FrameRate = "30/1" }, "30/1 fps"},
		{func(v *VideoParams) { v.PixFmt = "yuv420p10le" }, "yuv420p10le"},
		{func(v *VideoParams) { v.SAR = "4:3" }, "SAR 4:3"},
		{func(v *VideoParams) { v.FieldOrder = "tt" }, "interlaced"},
		{func(v *VideoParams) { v.Reorder = 4 }, "reorders 4"},
		{func(v *VideoParams) { v.Profile = "High 4:4:4 Predictive" }, "profile is High_4:4:4_Predictive"},
		{func(v *VideoParams) { v.Profile = "Constrained Baseline"; v.Reorder = 0 }, ""},
	}
	for _, c := range cases {
		v := ok
		c.edit(&v)
		got := SmartMismatch(v, prof)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q", v, got, c.want)
		}
	}
}

func TestDiffParams(t *testing.T) {
	a := VideoParams{Codec: "h264", Profile: "High", Level: 42, Width: 1920, Height: 1080, FrameRate: "60/1", PixFmt: "yuv420p", Extradata: "abc"}
	b := a
	if d := DiffParams(a.String(), b.String()); len(d) != 0 {
		t.Errorf("equal params differ: %v", d)
	}
	b.Width, b.Height, b.FrameRate, b.Extradata = 1280, 720, "30/1", "def"
	d := strings.Join(DiffParams(b.String(), a.String()), "; ")
	for _, w := range []string{"size 1280x720 ≠ 1920x1080", "fps 30/1 ≠ 60/1", "parameter_sets def ≠ abc"} {
		if !strings.Contains(d, w) {
			t.Errorf("diff %q lacks %q", d, w)
		}
	}
	if strings.Contains(d, "codec") || strings.Contains(d, "level") {
		t.Errorf("diff %q names equal parameters", d)
	}
}

func TestParseCutProbe(t *testing.T) {
	out := []byte(`{"packets":[{"pts_time":"1.433333","dts_time":"1.400000","flags":"K_"},{"pts_time":"1.500000","dts_time":"1.416667","flags":"__"},{"dts_time":"1.5","flags":"__"}],
"streams":[{"codec_name":"h264","profile":"High","width":640,"height":360,"has_b_frames":2,"sample_aspect_ratio":"1:1","pix_fmt":"yuv420p","level":31,
"field_order":"progressive","r_frame_rate":"60/1","start_time":"1.433333","extradata_hash":"SHA256:0123456789abcdef0123"}],
"format":{"start_time":"1.400000"}}`)
	v, pk, err := ParseCutProbe(out)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "codec=h264 profile=High level=31 size=640x360 fps=60/1 pix_fmt=yuv420p sar=1:1 field_order=progressive reorder=2 parameter_sets=0123456789abcdef" {
		t.Errorf("params %s", v)
	}
	if len(pk) != 2 || !pk[0].Key || pk[1].Key || pk[0].PTS < 0.0333 || pk[0].PTS > 0.0334 || pk[0].DTS != 0 {
		t.Errorf("packets %+v (times from the file's start; the packet without a time dropped)", pk)
	}
	if _, _, err := ParseCutProbe([]byte(`{"streams":[]}`)); err == nil {
		t.Error("no video stream accepted")
	}
}
