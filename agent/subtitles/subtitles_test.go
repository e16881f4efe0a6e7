package subtitles

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Highlights' cues land at their offsets in the montage, to the
// millisecond, cut to each highlight's length.
func TestMerge(t *testing.T) {
	got := Merge([]Part{
		{Offset: 0, Duration: ms(4000), Cues: []Cue{{ms(0), ms(1500), " Hello "}, {ms(3500), ms(5200), "cut at the end"}}},
		{Offset: ms(4000), Duration: ms(3333), Cues: []Cue{{ms(100), ms(900), "second\n\nclip"}, {ms(3400), ms(3600), "past the end"}}},
		{Offset: ms(7333), Duration: ms(2000), Cues: []Cue{{ms(-50), ms(250), "third"}, {ms(500), ms(700), "   "}}},
	})
	want := []Cue{
		{ms(0), ms(1500), "Hello"},
		{ms(3500), ms(4000), "cut at the end"},
		{ms(4100), ms(4900), "second\nclip"},
		{ms(7333), ms(7583), "third"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged:\n got %v\nwant %v", got, want)
	}
}

// A chunk's window holds the cues that overlap it, in its own time, cut
// at both edges; cues wholly outside it are left out.
func TestWindow(t *testing.T) {
	cues := []Cue{{ms(0), ms(1000), "before"}, {ms(9500), ms(10500), "across the start"}, {ms(12000), ms(13000), "inside"},
		{ms(19000), ms(21000), "across the end"}, {ms(20000), ms(22000), "after"}, {ms(15000), ms(16000), " \n "}}
	got := Window(cues, ms(10000), ms(10000))
	want := []Cue{{ms(0), ms(500), "across the start"}, {ms(2000), ms(3000), "inside"}, {ms(9000), ms(10000), "across the end"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("window:\n got %v\nwant %v", got, want)
	}
	if got := Window(cues, 0, ms(500)); !reflect.DeepEqual(got, []Cue{{0, ms(500), "before"}}) {
		t.Errorf("first window %v", got)
	}
}

func TestWriteAndParse(t *testing.T) {
	cues := []Cue{{ms(0), ms(1500), "Hello"}, {ms(3_723_004), ms(3_725_999), "two\nlines --> here"}}
	var srt, vtt bytes.Buffer
	if err := WriteSRT(&srt, cues); err != nil {
		t.Fatal(err)
	}
	if err := WriteVTT(&vtt, cues); err != nil {
		t.Fatal(err)
	}
	wantSRT := "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n01:02:03,004 --> 01:02:05,999\ntwo\nlines --> here\n\n"
	if srt.String() != wantSRT {
		t.Errorf("SRT:\n%q\nwant\n%q", srt.String(), wantSRT)
	}
	if !strings.HasPrefix(vtt.String(), "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello\n\n01:02:03.004 --> 01:02:05.999\ntwo\nlines -> here\n") {
		t.Errorf("VTT:\n%s", vtt.String())
	}
	back, err := ParseSRT(&srt)
	if err != nil || !reflect.DeepEqual(back, cues) {
		t.Errorf("SRT read back %v, %v", back, err)
	}
	vback, err := ParseVTT(&vtt)
	if err != nil || len(vback) != 2 || vback[1].Start != cues[1].Start || vback[1].End != cues[1].End {
		t.Errorf("VTT read back %v, %v", vback, err)
	}
}

func TestStrictParsers(t *testing.T) {
	for in, want := range map[string]string{
		"2\n00:00:00,000 --> 00:00:01,000\nx\n":                                        "cue 1",
		"1\n00:00:00.000 --> 00:00:01,000\nx\n":                                        "timestamp",
		"1\n00:00:02,000 --> 00:00:01,000\nx\n":                                        "not after its start",
		"1\n00:00:00,000 --> 00:00:01,000\n":                                           "its text",
		"1\n00:00:05,000 --> 00:00:06,000\nx\n\n2\n00:00:01,000 --> 00:00:02,000\ny\n": "starts before",
		"1\n00:00:00,000 -> 00:00:01,000\nx\n":                                         "START --> END",
		"1\n00:61:00,000 --> 01:01:01,000\nx\n":                                        "timestamp",
	} {
		if _, err := ParseSRT(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSRT(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	if _, err := ParseVTT(strings.NewReader("00:00:00.000 --> 00:00:01.000\nx\n")); err == nil {
		t.Error("a VTT without its header parsed")
	}
	if c, err := ParseVTT(strings.NewReader("WEBVTT\n\nid-1\n00:00:00.000 --> 00:00:01.000\nx\n")); err != nil || len(c) != 1 {
		t.Errorf("a VTT cue with an identifier: %v %v", c, err)
	}
}

// What is written plays in ffmpeg as a subtitle input, cue for cue.
func TestFFmpegReadsThem(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required: apt-get install -y ffmpeg")
	}
	cues := []Cue{{ms(500), ms(1500), "one"}, {ms(2000), ms(3250), "two"}, {ms(4000), ms(4100), "three"}}
	dir := t.TempDir()
	for name, write := range map[string]func(*bytes.Buffer) error{
		"s.srt": func(b *bytes.Buffer) error { return WriteSRT(b, cues) },
		"s.vtt": func(b *bytes.Buffer) error { return WriteVTT(b, cues) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		// Convert through ffmpeg's own demuxer and decoder, then compare.
		out := filepath.Join(dir, "back-"+name+".srt")
		if o, err := exec.Command(ff, "-v", "error", "-i", p, "-c:s", "srt", out).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg on %s: %v\n%s", name, err, o)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseSRT(f)
		f.Close()
		if err != nil || len(got) != len(cues) {
			t.Fatalf("%s through ffmpeg: %v %v", name, got, err)
		}
		for i := range cues {
			if got[i].Start != cues[i].Start || got[i].End != cues[i].End || got[i].Text != cues[i].Text {
				t.Errorf("%s cue %d through ffmpeg: %+v, want %+v", name, i, got[i], cues[i])
			}
		}
	}
}
