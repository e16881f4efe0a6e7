package transcribe

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/subtitles"
)

// Highlight is what a highlight's transcription gives.
type Highlight struct {
	Cues []subtitles.Cue
	// Coarse: the model gave text only; each chunk's text spans the chunk.
	Coarse bool
	// AudioSeconds and AudioBytes are what was sent: the job's cost.
	AudioSeconds float64
	AudioBytes   int64
}

// Transcribe extracts [start, start+duration) of input's audio into dir,
// cuts it into chunks under the upload limit at silences, transcribes each
// and returns the cues in the highlight's time (0 = its start).
func (c *Client) Transcribe(ctx context.Context, ff media.Tools, input string, start, duration float64, language, prompt, dir string) (Highlight, error) {
	audio := filepath.Join(dir, "transcript-audio.ogg")
	cmd := exec.CommandContext(ctx, ff.FFmpeg, media.TranscriptAudioArgs(input, start, duration, audio)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "matches no streams") {
			return Highlight{}, nil // no audio: nothing is said
		}
		msg := stderr.String()
		if len(msg) > 2048 {
			msg = msg[len(msg)-2048:]
		}
		return Highlight{}, fmt.Errorf("extract audio for the transcript: %v: %s", err, msg)
	}
	st, err := os.Stat(audio)
	if err != nil {
		return Highlight{}, err
	}
	bytesPerSec := float64(st.Size()) / max(duration, 0.001)
	maxChunk := 0.9 * MaxUpload / max(bytesPerSec, 1)
	if c.cfg.MaxChunk > 0 {
		maxChunk = min(maxChunk, c.cfg.MaxChunk.Seconds())
	}
	spans := Plan(duration, maxChunk, ParseSilences(strings.NewReader(stderr.String()), duration))
	var out Highlight
	for i, sp := range spans {
		path := audio
		if len(spans) > 1 {
			path = filepath.Join(dir, fmt.Sprintf("transcript-chunk-%03d.ogg", i))
			if b, err := exec.CommandContext(ctx, ff.FFmpeg, media.AudioChunkArgs(audio, sp.Start, sp.End, path)...).CombinedOutput(); err != nil {
				return Highlight{}, fmt.Errorf("cut audio chunk %d: %v: %s", i, err, b)
			}
		}
		if st, err := os.Stat(path); err == nil {
			out.AudioBytes += st.Size()
		}
		dur := time.Duration((sp.End - sp.Start) * float64(time.Second))
		r, err := c.Chunk(ctx, path, dur, language, prompt)
		if err != nil {
			return out, err
		}
		out.AudioSeconds += sp.End - sp.Start
		out.Coarse = out.Coarse || r.Coarse
		out.Cues = append(out.Cues, Shift(r.Cues, time.Duration(math.Round(sp.Start*1000))*time.Millisecond)...)
	}
	return out, nil
}
