package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/sources"
	"github.com/stream-montages/montage/agent/subtitles"
	"github.com/stream-montages/montage/agent/transcribe"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// transcriptFile is a highlight's transcript as agents exchange it (the
// transcribe task's result, the concat's input): cues in the highlight's
// time, in milliseconds.
type transcriptFile struct {
	Cues []struct {
		StartMS int64  `json:"start_ms"`
		EndMS   int64  `json:"end_ms"`
		Text    string `json:"text"`
	} `json:"cues"`
	Coarse       bool    `json:"coarse,omitempty"`
	AudioSeconds float64 `json:"audio_seconds"`
}

func (f transcriptFile) cues() []subtitles.Cue {
	out := make([]subtitles.Cue, 0, len(f.Cues))
	for _, c := range f.Cues {
		out = append(out, subtitles.Cue{Start: time.Duration(c.StartMS) * time.Millisecond, End: time.Duration(c.EndMS) * time.Millisecond, Text: c.Text})
	}
	return out
}

// readTranscript downloads a highlight's transcript to path, checks it
// and returns its cues, in the highlight's time.
func (a *Agent) readTranscript(ctx context.Context, tr *montagev1.TranscriptRef, path string) ([]subtitles.Cue, error) {
	if err := a.download(ctx, tr.GetUrl(), path, tr.GetSize(), tr.GetSha256()); err != nil {
		return nil, fmt.Errorf("transcript of highlight %d: %w", tr.GetHighlightIndex()+1, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f transcriptFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("transcript of highlight %d: %w", tr.GetHighlightIndex()+1, err)
	}
	return f.cues(), nil
}

// errNoTranscriber: the lease reached an agent that stopped transcribing
// (its key was refused); it goes back to another without using an attempt.
var errNoTranscriber = errors.New("this agent no longer transcribes")

// transcribeTask extracts and transcribes one highlight and uploads its
// transcript.
func (a *Agent) transcribeTask(ctx context.Context, l *montagev1.Lease, dir string) (*montagev1.TaskResult, error) {
	in := l.GetTranscribe()
	if in == nil {
		return nil, fmt.Errorf("transcribe lease without input")
	}
	c := a.transcriber()
	if c == nil {
		return nil, errNoTranscriber
	}
	if err := spec.CheckMediaURL(in.GetSourceUrl()); err != nil {
		return nil, fmt.Errorf("source url: %w", err)
	}
	src := media.Input{URL: in.GetSourceUrl(), Kind: media.SourceFile}
	if in.GetSourceType() == spec.SourcePage {
		if a.ytdlp.Path == "" {
			return nil, fmt.Errorf("this agent has no yt-dlp to resolve %s", in.GetSourceUrl())
		}
		res, err := a.ytdlp.Resolve(ctx, in.GetSourceUrl(), 360)
		if err != nil {
			return nil, err
		}
		src = streamInput(res.Video)
		if res.Audio != nil {
			src = streamInput(*res.Audio)
		}
	} else if in.GetSourceType() == spec.SourceHLS || in.GetSourceType() == "" && media.KindOf(in.GetSourceUrl()) == media.SourceHLS {
		src.Kind = media.SourceHLS
	}
	var route *sources.Route
	src, route = a.renderer().proxied(src)
	if route != nil {
		defer route.Close()
	}
	h, err := c.Transcribe(ctx, a.tools, src.URL, in.GetStartSeconds(), in.GetDurationSeconds(), in.GetLanguage(), in.GetPrompt(), dir)
	if errors.Is(err, transcribe.ErrUnauthorized) {
		// The agent's configuration, not the highlight: stop offering it.
		a.stopTranscribing(ctx, err)
		return nil, fmt.Errorf("%w: %v", errNoTranscriber, err)
	}
	if err != nil {
		return nil, explain(err, route)
	}
	var f transcriptFile
	for _, cue := range h.Cues {
		f.Cues = append(f.Cues, struct {
			StartMS int64  `json:"start_ms"`
			EndMS   int64  `json:"end_ms"`
			Text    string `json:"text"`
		}{cue.Start.Milliseconds(), cue.End.Milliseconds(), cue.Text})
	}
	f.Coarse, f.AudioSeconds = h.Coarse, h.AudioSeconds
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "transcript.json")
	if err := os.WriteFile(out, b, 0o600); err != nil {
		return nil, err
	}
	res, err := a.upload(ctx, out, l)
	if err != nil {
		return nil, err
	}
	res.DurationSeconds = h.AudioSeconds // the cost, for the farm's books
	if h.Coarse {
		res.Warning = fmt.Sprintf("the model %s answers text without times: its subtitles span each audio chunk, so their timing is coarse (use whisper-1 or a whisper server for timed segments)", c.Model())
	}
	a.log.Info("highlight transcribed", "task", l.GetTaskId(), "cues", len(f.Cues), "audio_seconds", h.AudioSeconds, "audio_bytes", h.AudioBytes, "coarse", h.Coarse)
	return res, nil
}

// transcriber is the agent's transcription client (nil: it does not
// transcribe, or stopped).
func (a *Agent) transcriber() *transcribe.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tr
}

// stopTranscribing drops the capability after the service refused the
// key, and registers again so no more transcripts are leased here.
func (a *Agent) stopTranscribing(ctx context.Context, why error) {
	a.mu.Lock()
	a.tr = nil
	a.mu.Unlock()
	a.log.Error("transcription is off on this agent: the service refused its key; fix -openai-key-file or OPENAI_API_KEY and restart", "err", why)
	if err := a.register(ctx); err != nil {
		a.log.Warn("register without transcription", "err", err)
	}
}

// subtitles merges the highlights' transcripts at their places in the
// montage into montage.srt and montage.vtt and, for "embed", adds them to
// the MP4 as a soft subtitle track (a stream copy of everything else).
func (a *Agent) subtitles(ctx context.Context, in *montagev1.ConcatInput, dir, out string, extras map[string]string) error {
	// Where each highlight lies in the montage: its chunks' committed
	// durations, in order, after the intro.
	type place struct{ offset, duration time.Duration }
	places := map[int32]*place{}
	var at time.Duration
	for _, s := range in.GetSegments() {
		d := time.Duration(s.GetDurationSeconds() * float64(time.Second))
		if s.GetRole() == "highlight" || s.GetRole() == "" {
			p := places[s.GetHighlightIndex()]
			if p == nil {
				p = &place{offset: at}
				places[s.GetHighlightIndex()] = p
			}
			p.duration += d
		}
		at += d
	}
	var parts []subtitles.Part
	for i, tr := range in.GetTranscripts() {
		p := places[tr.GetHighlightIndex()]
		if p == nil {
			return fmt.Errorf("transcript of highlight %d: no such highlight in the montage", tr.GetHighlightIndex()+1)
		}
		cues, err := a.readTranscript(ctx, tr, filepath.Join(dir, fmt.Sprintf("transcript-%03d.json", i)))
		if err != nil {
			return err
		}
		parts = append(parts, subtitles.Part{Offset: p.offset, Duration: p.duration, Cues: cues})
	}
	cues := subtitles.Merge(parts)
	for name, write := range map[string]func(io.Writer, []subtitles.Cue) error{"srt": subtitles.WriteSRT, "vtt": subtitles.WriteVTT} {
		path := filepath.Join(dir, "montage."+name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = write(f, cues)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("montage.%s: %w", name, err)
		}
		extras[name] = path
	}
	if in.GetSubtitles() != spec.SubtitlesEmbed || len(cues) == 0 {
		return nil
	}
	withSubs := filepath.Join(dir, "montage-subtitled.mp4")
	if _, err := a.tools.RunFFmpeg(ctx, media.EmbedSubtitlesArgs(out, extras["srt"], in.GetLanguage(), withSubs), 0, nil); err != nil {
		return fmt.Errorf("embed subtitles: %w", err)
	}
	return os.Rename(withSubs, out)
}
