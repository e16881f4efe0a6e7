package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// errFinal marks a failure no other attempt can mend (the input is wrong):
// the coordinator fails the job at once.
var errFinal = errors.New("cannot work with this input")

// finalError wraps a message as a final failure.
type finalError struct{ msg string }

func (e finalError) Error() string { return e.msg }
func (e finalError) Is(target error) bool {
	return target == errFinal
}

// copyCut makes a segment whose video is (mostly) copied from the source:
// one ffprobe reads the packets around the cut, the plan says which pieces
// are copied and which re-encoded, each piece is written as MPEG-TS, the
// audio is cut (and levelled) on its own, and one last ffmpeg joins them.
func (a Renderer) copyCut(ctx context.Context, prof media.Profile, r media.Render, probe *cutProbe, facts *montagev1.SourceFacts,
	dir string, progress func(float64)) (float64, *montagev1.SourceFacts, error) {
	params, pk, to, err := probe.wait()
	if err != nil {
		return 0, nil, fmt.Errorf("read the source's packets: %w", err)
	}
	facts.VideoParams = params.String()
	var plan media.CutPlan
	fps := prof.FPS
	if prof.Cut == spec.CutKeyframe {
		if params.Codec != "h264" {
			return 0, nil, finalError{fmt.Sprintf("cut: keyframe copies H.264; this source is %s (use smart or exact)", params.Codec)}
		}
		if fps = params.FPS(); fps <= 0 {
			return 0, nil, finalError{"cut: keyframe needs a source with a known frame rate"}
		}
		if plan, err = media.PlanKeyframeCut(pk, r.Start, r.Duration, to); err != nil {
			return 0, nil, finalError{err.Error()}
		}
	} else {
		frames := int(math.Round(r.Duration * fps))
		note := media.SmartMismatch(params, prof)
		if r.SubtitlesFile != "" {
			note = "subtitles are burned into every frame"
		}
		if note == "" {
			edges := media.SmartEdges{Head: media.FadeLength(r), Tail: media.FadeLength(r)}
			if r.TitleFile != "" {
				edges.Head = math.Max(edges.Head, r.TitleSeconds)
			}
			plan = media.PlanSmartCut(pk, r.Start, frames, fps, edges)
		} else {
			plan = media.CutPlan{Mode: media.CutEncoded, Note: note, Pieces: []media.Piece{{Start: r.Start, Frames: frames}}, Start: r.Start, Frames: frames}
		}
	}
	whole := r
	whole.Start, whole.Duration = plan.Start, float64(plan.Frames)/fps
	if plan.Seconds > 0 {
		whole.Duration = plan.Seconds // the audio lasts what the copied frames show
	}
	reorder := params.Reorder
	if plan.Mode == media.CutEncoded {
		reorder = -1 // nothing copied to match: the preset's own
	}
	// The audio is cut while the video pieces are made: one is a single
	// thread of decoding and measuring, the others mostly copying or x264.
	wav := filepath.Join(dir, "audio.wav")
	measure := prof.Loudness != 0 && whole.HasAudio
	type audioDone struct {
		log string
		err error
	}
	audio := make(chan audioDone, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, log, err := a.Tools.RunFFmpegLog(actx, media.SegmentAudioArgs(whole, wav, measure), 0, nil)
		audio <- audioDone{log, err}
	}()
	// The pieces are made at once too: a head and a tail are short x264
	// runs whose start-up and decoding overlap well, the copy is I/O.
	list := make([]string, len(plan.Pieces))
	errs := make([]error, len(plan.Pieces))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		part = make([]float64, len(plan.Pieces))
	)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	for i, pc := range plan.Pieces {
		list[i] = filepath.Join(dir, fmt.Sprintf("piece-%d.ts", i))
		var args []string
		if pc.Copy {
			args = media.CopyPieceArgs(r.Video, pc.Start, pc.Seek, pc.Frames, list[i])
		} else {
			pr := whole
			pr.Start, pr.Duration, pr.Whole = pc.Start, float64(pc.Frames)/fps, whole.Duration
			pr.FadeIn = whole.FadeIn && i == 0
			pr.FadeOut = whole.FadeOut && i == len(plan.Pieces)-1
			if i > 0 {
				pr.TitleFile = ""
			}
			args = media.EncodePieceArgs(pr, pc.Frames, reorder, pc.Seek, list[i])
		}
		share := float64(pc.Frames) / float64(max(1, plan.Frames))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Tools.RunFFmpeg(pctx, args, float64(pc.Frames)/fps, func(p float64) {
				mu.Lock()
				defer mu.Unlock()
				part[i] = share * p
				sum := 0.0
				for _, v := range part {
					sum += v
				}
				progress(0.9 * sum)
			})
			if err != nil {
				errs[i] = fmt.Errorf("piece %d of the cut: %w", i+1, err)
				stop()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	ad := <-audio
	if ad.err != nil {
		return 0, nil, fmt.Errorf("audio of the cut: %w", ad.err)
	}
	var m *media.Loudness
	if measure {
		lv, ok, err := media.ParseEBUR128(ad.log)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			m = &lv
		}
	}
	listPath := filepath.Join(dir, "pieces.ffconcat")
	if err := os.WriteFile(listPath, []byte(media.ConcatList(list)), 0o640); err != nil {
		return 0, nil, fmt.Errorf("pieces list: %w", err)
	}
	n, err := a.Tools.RunFFmpeg(ctx, media.JoinPiecesArgs(whole, m, listPath, wav), whole.Duration, func(p float64) { progress(0.9 + 0.1*p) })
	if err != nil {
		return 0, nil, fmt.Errorf("join the cut: %w", err)
	}
	facts.Cut, facts.CutNote, facts.CutStartSeconds = plan.Mode, plan.Note, plan.Start
	facts.CopiedSeconds = float64(plan.Copied) / fps
	length := media.WholeFrames(n, fps)
	if plan.Seconds > 0 {
		facts.CopiedSeconds, length = plan.Seconds, n
	}
	return min(whole.Duration, length), facts, nil
}

// cutProbe is a copying cut's packet probe, started before the render's
// other probe so that the two ffprobes overlap.
type cutProbe struct {
	to   float64
	done chan struct{}
	v    media.VideoParams
	pk   []media.Packet
	err  error
}

// startCutProbe reads the packets around r's cut in the background: from
// CutWindow before to CutWindow after for a keyframe cut (the keyframes it
// snaps to lie outside the cut), a second before and two after for a
// smart one.
func (a Renderer) startCutProbe(ctx context.Context, cut string, r media.Render) *cutProbe {
	from, to := r.Start-media.CutWindow, r.Start+r.Duration+media.CutWindow
	if cut == spec.CutSmart {
		from, to = r.Start-1, r.Start+r.Duration+2
	}
	p := &cutProbe{to: to, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.v, p.pk, p.err = a.Tools.CutProbe(ctx, r.Video, from, to)
	}()
	return p
}

func (p *cutProbe) wait() (media.VideoParams, []media.Packet, float64, error) {
	<-p.done
	return p.v, p.pk, p.to, p.err
}

// keyframeMismatch checks that the segments of a keyframe cut share their
// video's codec parameters: copied H.264 with other parameters than the
// stream it joins glitches or does not play. It names each segment that
// differs from the first and how.
func keyframeMismatch(segs []*montagev1.ConcatSegment) error {
	if len(segs) == 0 {
		return nil
	}
	ref := segs[0].GetSource().GetVideoParams()
	var bad []string
	for _, s := range segs[1:] {
		if d := media.DiffParams(s.GetSource().GetVideoParams(), ref); len(d) > 0 {
			bad = append(bad, fmt.Sprintf("%s: %s", partName(s), strings.Join(d, ", ")))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return finalError{fmt.Sprintf("cut: keyframe joins copied video, so every source must have the same codec parameters as %s; these differ (theirs ≠ the first's):\n  %s\nuse cut: smart (which re-encodes what does not match) or exact",
		partName(segs[0]), strings.Join(bad, "\n  "))}
}

func partName(s *montagev1.ConcatSegment) string {
	name := fmt.Sprintf("highlight %d", s.GetHighlightIndex()+1)
	if s.GetRole() != "highlight" && s.GetRole() != "" {
		name = "the " + s.GetRole()
	}
	if u := s.GetSourceUrl(); u != "" {
		name += " (" + redact(u) + ")"
	}
	return name
}
