// Package subtitles holds timed text: cues from a transcript, merged
// across a montage's highlights, written as SRT and WebVTT and read back
// by strict parsers (the tests' check, and what a player must accept).
package subtitles

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Cue is one subtitle: text shown from Start until End.
type Cue struct {
	Start, End time.Duration
	Text       string
}

// Part is one highlight's cues in a montage: where the highlight starts
// in the montage and how long it lasts there.
type Part struct {
	Offset, Duration time.Duration
	Cues             []Cue
}

// Merge places each part's cues at its offset, cut to the part's length
// (a cue past a highlight's end would show over the next one), in order.
func Merge(parts []Part) []Cue {
	var out []Cue
	for _, p := range parts {
		for _, c := range p.Cues {
			start, end := max(c.Start, 0), min(c.End, p.Duration)
			text := clean(c.Text)
			if end <= start || text == "" {
				continue
			}
			out = append(out, Cue{Start: p.Offset + start, End: p.Offset + end, Text: text})
		}
	}
	slices.SortStableFunc(out, func(a, b Cue) int { return int(a.Start - b.Start) })
	return out
}

// Window returns the cues that show between from and from+length, in the
// window's own time and cut at its edges: what one chunk of a highlight
// burns in when cues are in the highlight's time.
func Window(cues []Cue, from, length time.Duration) []Cue {
	var out []Cue
	for _, c := range cues {
		start, end := max(c.Start-from, 0), min(c.End-from, length)
		text := clean(c.Text)
		if end <= start || text == "" {
			continue
		}
		out = append(out, Cue{Start: start, End: end, Text: text})
	}
	slices.SortStableFunc(out, func(a, b Cue) int { return int(a.Start - b.Start) })
	return out
}

// clean trims a cue's text and removes blank lines, which would end the
// cue early in both formats.
func clean(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// stamp formats d as HH:MM:SS<sep>mmm, rounded to the millisecond.
func stamp(d time.Duration, sep string) string {
	ms := (d + time.Millisecond/2) / time.Millisecond
	return fmt.Sprintf("%02d:%02d:%02d%s%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}

// WriteSRT writes cues as SubRip.
func WriteSRT(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	for i, c := range cues {
		fmt.Fprintf(bw, "%d\n%s --> %s\n%s\n\n", i+1, stamp(c.Start, ","), stamp(c.End, ","), clean(c.Text))
	}
	return bw.Flush()
}

// WriteVTT writes cues as WebVTT.
func WriteVTT(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("WEBVTT\n\n")
	for _, c := range cues {
		// "-->" may not appear in a cue's text.
		fmt.Fprintf(bw, "%s --> %s\n%s\n\n", stamp(c.Start, "."), stamp(c.End, "."), strings.ReplaceAll(clean(c.Text), "-->", "->"))
	}
	return bw.Flush()
}

func parseStamp(s, sep string) (time.Duration, error) {
	var h, m, sec, ms int
	if n, err := fmt.Sscanf(s, "%02d:%02d:%02d"+sep+"%03d", &h, &m, &sec, &ms); err != nil || n != 4 || len(s) != 12 || m > 59 || sec > 59 {
		return 0, fmt.Errorf("timestamp %q is not HH:MM:SS%sMMM", s, sep)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond, nil
}

// blocks splits a file into blank-line separated blocks of lines, with the
// line number each starts at.
func blocks(r io.Reader) ([][]string, []int, error) {
	sc := bufio.NewScanner(r)
	var out [][]string
	var at []int
	var cur []string
	n := 0
	for sc.Scan() {
		n++
		l := strings.TrimRight(sc.Text(), "\r")
		if l == "" {
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		if cur == nil {
			at = append(at, n)
		}
		cur = append(cur, l)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, at, sc.Err()
}

// timing reads "START --> END".
func timing(line, sep string) (time.Duration, time.Duration, error) {
	a, b, ok := strings.Cut(line, " --> ")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not START --> END", line)
	}
	start, err := parseStamp(a, sep)
	if err != nil {
		return 0, 0, err
	}
	end, err := parseStamp(b, sep)
	if err != nil {
		return 0, 0, err
	}
	if end <= start {
		return 0, 0, fmt.Errorf("cue ends at %s, not after its start %s", b, a)
	}
	return start, end, nil
}

// ParseSRT reads SubRip strictly: cues numbered from 1 in order, exact
// timestamps, text on each, starts in order.
func ParseSRT(r io.Reader) ([]Cue, error) {
	bs, at, err := blocks(r)
	if err != nil {
		return nil, err
	}
	var out []Cue
	for i, b := range bs {
		if len(b) < 3 || b[0] != fmt.Sprint(i+1) {
			return nil, fmt.Errorf("line %d: cue %d must be its number, its timing and its text", at[i], i+1)
		}
		start, end, err := timing(b[1], ",")
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", at[i]+1, err)
		}
		if len(out) > 0 && start < out[len(out)-1].Start {
			return nil, fmt.Errorf("line %d: cue %d starts before the one before it", at[i]+1, i+1)
		}
		out = append(out, Cue{Start: start, End: end, Text: strings.Join(b[2:], "\n")})
	}
	return out, nil
}

// ParseVTT reads WebVTT strictly: the WEBVTT header, then cues with an
// optional identifier, exact timestamps, text, starts in order.
func ParseVTT(r io.Reader) ([]Cue, error) {
	bs, at, err := blocks(r)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 || bs[0][0] != "WEBVTT" && !strings.HasPrefix(bs[0][0], "WEBVTT ") {
		return nil, fmt.Errorf("line 1: a WebVTT file starts with WEBVTT")
	}
	var out []Cue
	for i, b := range bs[1:] {
		line := at[i+1]
		if !strings.Contains(b[0], "-->") {
			b, line = b[1:], line+1 // an identifier
		}
		if len(b) < 2 {
			return nil, fmt.Errorf("line %d: a cue needs a timing and text", line)
		}
		start, end, err := timing(b[0], ".")
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(out) > 0 && start < out[len(out)-1].Start {
			return nil, fmt.Errorf("line %d: a cue starts before the one before it", line)
		}
		out = append(out, Cue{Start: start, End: end, Text: strings.Join(b[1:], "\n")})
	}
	return out, nil
}
