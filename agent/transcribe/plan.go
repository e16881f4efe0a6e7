// Package transcribe turns a highlight's audio into timed cues with an
// OpenAI-compatible transcription service (OpenAI's Whisper API, or
// whisper.cpp's server, speaches or LocalAI on the farm's own PCs): it
// plans chunks under the upload limit at silences, sends each, retries
// what the service may answer later, and shifts the segments back into
// the highlight's time.
package transcribe

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Span is a stretch of audio, in seconds.
type Span struct{ Start, End float64 }

// MaxUpload is the service's upload limit (OpenAI: 25 MB); chunks stay
// under 90% of it.
const MaxUpload = 25 << 20

// Plan cuts [0, duration) into chunks of at most maxChunk seconds, at the
// middle of a silence where one falls in the second half of a chunk (a cut
// mid-word loses the word), else at the limit.
func Plan(duration, maxChunk float64, silences []Span) []Span {
	if duration <= 0 {
		return nil
	}
	if maxChunk <= 0 {
		maxChunk = duration
	}
	var out []Span
	for pos := 0.0; pos < duration; {
		end := pos + maxChunk
		if end >= duration {
			out = append(out, Span{pos, duration})
			break
		}
		cut := end
		for _, s := range silences {
			mid := (s.Start + s.End) / 2
			if mid > pos+maxChunk/2 && mid <= end {
				cut = mid // the latest one that fits
			}
		}
		out = append(out, Span{pos, cut})
		pos = cut
	}
	return out
}

// ParseSilences reads ffmpeg's silencedetect report (on stderr):
// "silence_start: 12.3" then "silence_end: 14.5 | silence_duration: 2.2".
// A silence still open at the end runs to duration.
func ParseSilences(r io.Reader, duration float64) []Span {
	var out []Span
	open := -1.0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "silence_start: "); i >= 0 {
			if v, err := strconv.ParseFloat(strings.Fields(line[i+len("silence_start: "):])[0], 64); err == nil {
				open = max(0, v)
			}
		}
		if i := strings.Index(line, "silence_end: "); i >= 0 && open >= 0 {
			if v, err := strconv.ParseFloat(strings.Fields(line[i+len("silence_end: "):])[0], 64); err == nil {
				out = append(out, Span{open, v})
			}
			open = -1
		}
	}
	if open >= 0 && open < duration {
		out = append(out, Span{open, duration})
	}
	return out
}
