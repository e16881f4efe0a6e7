package worker

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/sources"
	"github.com/stream-montages/montage/agent/subtitles"
	"github.com/stream-montages/montage/internal/multipart"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func profileOf(p *montagev1.RenderProfile) (media.Profile, error) {
	r, err := spec.ResolveProfile(p)
	if err != nil {
		return media.Profile{}, fmt.Errorf("lease profile: %w", err)
	}
	mp := media.Profile{
		Width: r.Width, Height: r.Height, FPS: r.FPS, Quality: r.Quality,
		AudioBitrate: strconv.Itoa(r.AudioBitrate/1000) + "k",
		Encoder:      r.Encoder, Crop: r.Fit == spec.FitCrop, Fade: r.Fade, Preset: r.Preset, Cut: r.Cut,
	}
	if !r.LoudnessOff {
		mp.Loudness = r.Loudness
	}
	return mp, nil
}

// runTask does the work of one lease in a private directory and uploads the
// results; the caller reports them.
func (a *Agent) runTask(ctx context.Context, l *montagev1.Lease, progress func(float64)) (*montagev1.TaskResult, error) {
	dir := filepath.Join(a.cfg.DataDir, "work", fmt.Sprintf("%s-%d", l.GetTaskId(), l.GetAttempt()))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	prof, err := profileOf(l.GetProfile())
	if err != nil {
		return nil, err
	}
	if l.GetType() == montagev1.TaskType_TASK_TYPE_TRANSCRIBE {
		return a.transcribeTask(ctx, l, dir)
	}
	if enc := prof.Encoder; enc != "" && !slices.Contains(a.caps.Load().GetEncoders(), enc) {
		return nil, fmt.Errorf("this agent cannot encode with %s (it proved %v)", enc, a.caps.Load().GetEncoders())
	}
	if in := l.GetRender(); in != nil && in.GetCachedIdentity() != "" && a.sourceUnchanged(ctx, in, prof.Height) {
		err := a.report(ctx, func(ctx context.Context) error {
			_, err := a.client.CompleteTask(ctx, connect.NewRequest(&montagev1.CompleteTaskRequest{
				AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Result: &montagev1.TaskResult{ReuseCache: true},
			}))
			return err
		})
		if err == nil {
			return nil, errReused
		}
		if errors.Is(err, errStale) || connect.CodeOf(err) != connect.CodeFailedPrecondition {
			return nil, err
		}
		a.log.Info("cached render gone; rendering", "task", l.GetTaskId(), "err", err)
	}
	out := filepath.Join(dir, "out.mp4")
	var (
		written float64
		facts   *montagev1.SourceFacts
		extras  map[string]string
	)
	switch l.GetType() {
	case montagev1.TaskType_TASK_TYPE_RENDER:
		began := time.Now()
		written, facts, err = a.render(ctx, l.GetRender(), prof, dir, out, progress)
		if err == nil {
			a.stats.rendered(prof.VideoEncoder(), written, time.Since(began), prof.FPS)
		}
	case montagev1.TaskType_TASK_TYPE_CONCAT:
		written, extras, err = a.concat(ctx, l, prof, dir, out, progress)
	default:
		err = fmt.Errorf("task type %s is not supported by this agent", l.GetType())
	}
	if err != nil {
		return nil, err
	}
	if written <= 0 {
		return nil, fmt.Errorf("ffmpeg wrote no media (is the highlight past the end of the source?)")
	}
	var extrasOut []*montagev1.OutputObject
	for _, slot := range l.GetExtraOutputs() {
		path, ok := extras[slot.GetName()]
		if !ok {
			continue
		}
		x, err := a.uploadSmall(ctx, path, slot.GetPutUrl())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", slot.GetName(), err)
		}
		x.Name, x.Key = slot.GetName(), slot.GetKey()
		a.stats.storeBytes.Add(float64(x.GetSize()))
		extrasOut = append(extrasOut, x)
	}
	res, err := a.upload(ctx, out, l)
	if err != nil {
		return nil, err
	}
	a.stats.storeBytes.Add(float64(res.GetSize()))
	res.DurationSeconds = written
	// A segment stays for its montage's concat, should that come here.
	a.spool.stage(l, out, prof.AudioBitrate, res)
	res.Source = facts
	if n := facts.GetCutNote(); n != "" {
		res.Warning = "re-encoded whole instead of smart-cut: " + n
	}
	res.ExtraOutputs = extrasOut
	return res, nil
}

// errReused: the task was completed from the segment cache; nothing more
// to report.
var errReused = errors.New("completed from the cache")

// sourceUnchanged reports whether the source still shows the identity its
// cached render was made from (one range request, or yt-dlp for a page).
// Any doubt (an error, no identity) means render again.
func (a *Agent) sourceUnchanged(ctx context.Context, in *montagev1.RenderInput, height int) bool {
	var (
		now string
		err error
	)
	if in.GetSourceType() == spec.SourcePage {
		if a.ytdlp.Path == "" {
			return false
		}
		var res *sources.Resolved
		if res, err = a.ytdlp.Resolve(ctx, in.GetSourceUrl(), height); err == nil {
			now = res.Identity
		}
	} else {
		now, err = sources.Probe(ctx, a.proxy.Client, in.GetSourceUrl(), nil)
	}
	if err != nil {
		a.log.Info("source identity unknown; rendering", "err", err)
		return false
	}
	if now != in.GetCachedIdentity() {
		a.log.Info("source changed since it was cached; rendering", "then", in.GetCachedIdentity(), "now", now)
		return false
	}
	return now != ""
}

// Renderer does the media work of tasks with local files: what an agent runs
// for a lease, and what bench/direct runs in a plain loop to measure the
// farm's overhead against.
type Renderer struct {
	Tools media.Tools
	YTDLP sources.YTDLP
	Font  string
	// Proxy, when set, carries ffmpeg's reads of plain media files in
	// bounded range requests (see sources.RangeProxy).
	Proxy *sources.RangeProxy
	// Burn, when set, draws a transcript's cues into the picture.
	Burn *Burn
}

// Burn is a highlight's transcript to burn in: cues in the highlight's
// time, which begins at Origin seconds into the source.
type Burn struct {
	Cues   []subtitles.Cue
	Origin float64
}

// proxied routes an input through the range proxy: a file, or a playlist
// with everything it names (the proxy rewrites absolute URIs to itself).
// The route is nil without a proxy.
func (a Renderer) proxied(in media.Input) (media.Input, *sources.Route) {
	if a.Proxy == nil {
		return in, nil
	}
	r := a.Proxy.Register(in.URL, in.Headers, in.Kind == media.SourceHLS)
	return media.Input{URL: r.URL, Kind: in.Kind, Proxied: true}, r
}

// explain puts what really went wrong with a source first: ffmpeg only saw
// the proxy's 502 at a loopback URL, while the route knows the source's URL
// and the cause (connection refused, a certificate, a refused address).
func explain(err error, routes ...*sources.Route) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var cause error
	for _, r := range routes {
		if r == nil {
			continue
		}
		msg = r.Unproxy(msg)
		if cause == nil {
			cause = r.Err()
		}
	}
	if cause == nil {
		if msg == err.Error() {
			return err
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%w\n%s", cause, msg)
}

func (a *Agent) render(ctx context.Context, in *montagev1.RenderInput, prof media.Profile, dir, out string, progress func(float64)) (float64, *montagev1.SourceFacts, error) {
	r := a.renderer()
	if tr := in.GetBurnSubtitles(); tr != nil {
		if !a.caps.Load().GetBurnSubtitles() {
			return 0, nil, fmt.Errorf("this agent cannot burn subtitles (its ffmpeg lacks libass's subtitles filter, or no font was found)")
		}
		cues, err := a.readTranscript(ctx, tr, filepath.Join(dir, "transcript.json"))
		if err != nil {
			return 0, nil, err
		}
		r.Burn = &Burn{Cues: cues, Origin: in.GetHighlightStartSeconds()}
	}
	return r.Render(ctx, in, prof, dir, out, progress)
}

func (a *Agent) renderer() Renderer {
	return Renderer{Tools: a.tools, YTDLP: a.ytdlp, Font: a.font, Proxy: a.proxy}
}

// Render cuts one highlight (or one chunk of it) into out; the ffmpeg
// commands map exactly one video and one audio stream, so a segment that
// exists has both.
func (a Renderer) Render(ctx context.Context, in *montagev1.RenderInput, prof media.Profile, dir, out string, progress func(float64)) (float64, *montagev1.SourceFacts, error) {
	if in == nil {
		return 0, nil, fmt.Errorf("render lease without input")
	}
	if err := spec.CheckMediaURL(in.GetSourceUrl()); err != nil {
		return 0, nil, fmt.Errorf("source url: %w", err)
	}
	r := media.Render{
		Start: in.GetStartSeconds(), Duration: media.WholeFrames(in.GetDurationSeconds(), prof.FPS), Profile: prof,
		FadeIn: in.GetFadeIn(), FadeOut: in.GetFadeOut(), Output: out,
	}
	facts := &montagev1.SourceFacts{}
	if in.GetSourceType() == spec.SourcePage {
		if a.YTDLP.Path == "" {
			return 0, nil, fmt.Errorf("this agent has no yt-dlp to resolve %s", in.GetSourceUrl())
		}
		res, err := a.YTDLP.Resolve(ctx, in.GetSourceUrl(), prof.Height)
		if err != nil {
			return 0, nil, err
		}
		r.Video = streamInput(res.Video)
		if res.Audio != nil {
			ai := streamInput(*res.Audio)
			r.Audio = &ai
		}
		r.HasAudio = res.HasAudio
		facts.Extractor, facts.DurationSeconds, facts.Identity = res.Extractor, res.Duration, res.Identity
		facts.Width, facts.Height, facts.Fps = int32(res.Width), int32(res.Height), res.FPS
	} else {
		kind := media.SourceFile
		if in.GetSourceType() == spec.SourceHLS || in.GetSourceType() == "" && media.KindOf(in.GetSourceUrl()) == media.SourceHLS {
			kind = media.SourceHLS
		}
		r.Video = media.Input{URL: in.GetSourceUrl(), Kind: kind}
	}
	var videoRoute, audioRoute *sources.Route
	r.Video, videoRoute = a.proxied(r.Video)
	if videoRoute != nil {
		defer videoRoute.Close()
	}
	if r.Audio != nil {
		var ai media.Input
		ai, audioRoute = a.proxied(*r.Audio)
		if audioRoute != nil {
			defer audioRoute.Close()
		}
		r.Audio = &ai
	}
	n, facts, err := a.cut(ctx, in, prof, r, facts, dir, progress)
	if err == nil && facts != nil && facts.Identity == "" && videoRoute != nil {
		facts.Identity = videoRoute.Identity()
	}
	if err == nil {
		// ffmpeg's HLS demuxer skips a segment it cannot open and carries
		// on: the cut would silently lose seconds. Any failed source read
		// fails the render instead, so it is retried.
		for _, rt := range []*sources.Route{videoRoute, audioRoute} {
			if rt != nil && rt.Err() != nil {
				return 0, nil, fmt.Errorf("%w\n(ffmpeg went on without it; the render would miss part of the source)", rt.Err())
			}
		}
	}
	return n, facts, explain(err, videoRoute, audioRoute)
}

// cut runs the probes and ffmpeg passes of one render on proxied inputs.
func (a Renderer) cut(ctx context.Context, in *montagev1.RenderInput, prof media.Profile, r media.Render, facts *montagev1.SourceFacts,
	dir string, progress func(float64)) (float64, *montagev1.SourceFacts, error) {
	var probe *cutProbe
	if prof.Cut != "" {
		probe = a.startCutProbe(ctx, prof.Cut, r)
	}
	// One ffprobe tells whether there is audio to map and whether the cut
	// lies inside the source; it reads only the header, and runs while the
	// render starts (see speculate).
	var streams *streamProbe
	if r.Audio == nil {
		streams = a.startStreamProbe(ctx, r.Video, in.GetStartSeconds(), facts)
		r.HasAudio = true
	}
	if in.GetSnapStart() || in.GetSnapEnd() {
		if err := a.snapChunk(ctx, in, &r); err != nil {
			return 0, nil, err
		}
	}
	if t := in.GetOverlayTitle(); t != "" {
		if a.Font == "" {
			return 0, nil, fmt.Errorf("no font for the title overlay on this agent")
		}
		r.TitleFile, r.FontFile, r.TitleSeconds = filepath.Join(dir, "title.txt"), a.Font, in.GetTitleSeconds()
		if err := os.WriteFile(r.TitleFile, []byte(t), 0o640); err != nil {
			return 0, nil, fmt.Errorf("title: %w", err)
		}
	}
	if a.Burn != nil {
		// The cut's own window of the highlight's cues: where this chunk
		// really starts (its edges may have moved to keyframes) and lasts.
		sec := func(v float64) time.Duration { return time.Duration(math.Round(v * float64(time.Second))) }
		cues := subtitles.Window(a.Burn.Cues, sec(r.Start-a.Burn.Origin), sec(r.Duration))
		if len(cues) > 0 {
			r.SubtitlesFile = filepath.Join(dir, "burn.srt")
			var b bytes.Buffer
			if err := subtitles.WriteSRT(&b, cues); err != nil {
				return 0, nil, err
			}
			if err := os.WriteFile(r.SubtitlesFile, b.Bytes(), 0o640); err != nil {
				return 0, nil, fmt.Errorf("subtitles to burn: %w", err)
			}
			if a.Font != "" {
				r.FontsDir = filepath.Dir(a.Font)
			}
		}
	}
	if prof.Cut != "" {
		if err := streams.apply(&r); err != nil {
			return 0, nil, err
		}
		return a.copyCut(ctx, prof, r, probe, facts, dir, progress)
	}
	return a.speculate(ctx, streams, r, func(ctx context.Context, r media.Render) (float64, *montagev1.SourceFacts, error) {
		return a.encode(ctx, prof, r, facts, dir, progress)
	})
}

// streamProbe is the stream probe of a render's source, running in the
// background.
type streamProbe struct {
	done chan struct{}
	info media.Info
	err  error
}

// startStreamProbe probes in the background, then checks what the render
// needs (a video stream, a start inside the source) and fills facts.
func (a Renderer) startStreamProbe(ctx context.Context, in media.Input, start float64, facts *montagev1.SourceFacts) *streamProbe {
	p := &streamProbe{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		info, err := a.Tools.Probe(ctx, in)
		switch {
		case err != nil:
			p.err = fmt.Errorf("probe source: %w", err)
		case !info.HasVideo:
			p.err = fmt.Errorf("source has no video stream")
		case info.Duration > 0 && start >= info.Duration:
			p.err = fmt.Errorf("highlight starts at %s but the source is only %s long",
				spec.FormatTimestamp(start), spec.FormatTimestamp(info.Duration))
		default:
			p.info = info
			fillFacts(facts, info)
		}
	}()
	return p
}

// apply waits for the probe and tells r whether the source has audio; a
// nil probe (separate audio input: there is audio) leaves r as it is.
func (p *streamProbe) apply(r *media.Render) error {
	if p == nil {
		return nil
	}
	<-p.done
	if p.err != nil {
		return p.err
	}
	r.HasAudio = p.info.HasAudio
	return nil
}

// speculate starts run as if the source had audio, as nearly every source
// does, while the stream probe finishes: the probe's quarter second is off
// every render's time. A source the probe refuses stops the run; one
// without audio runs again with generated silence.
func (a Renderer) speculate(ctx context.Context, streams *streamProbe, r media.Render,
	run func(context.Context, media.Render) (float64, *montagev1.SourceFacts, error)) (float64, *montagev1.SourceFacts, error) {
	if streams == nil {
		return run(ctx, r)
	}
	type result struct {
		n     float64
		facts *montagev1.SourceFacts
		err   error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func(r media.Render) {
		n, f, err := run(rctx, r)
		done <- result{n, f, err}
	}(r)
	if err := streams.apply(&r); err != nil {
		cancel()
		<-done
		return 0, nil, err
	}
	if !r.HasAudio {
		cancel()
		<-done
		return run(ctx, r)
	}
	res := <-done
	return res.n, res.facts, res.err
}

// encode renders r by re-encoding every frame (cut: exact): one pass, or
// two when loudness is normalised.
func (a Renderer) encode(ctx context.Context, prof media.Profile, r media.Render, facts *montagev1.SourceFacts,
	dir string, progress func(float64)) (float64, *montagev1.SourceFacts, error) {
	d := r.Duration
	// ffmpeg's last out_time can run past the cut by a packet; the segment
	// itself lasts d (whole frames, audio cut to match) unless the source
	// ended first. Chapters and the manifest need the real length.
	length := func(n float64, err error) (float64, *montagev1.SourceFacts, error) {
		if err != nil {
			return 0, nil, err
		}
		return min(d, media.WholeFrames(n, prof.FPS)), facts, nil
	}
	if prof.Loudness == 0 || !r.HasAudio {
		return length(a.Tools.RunFFmpeg(ctx, media.RenderArgs(r), d, progress))
	}
	// Two passes: the first reads the source once, encodes the video and
	// measures the audio; the second brings the kept audio to the target
	// with one linear gain and muxes.
	video, audio := filepath.Join(dir, "video.mp4"), filepath.Join(dir, "audio.wav")
	_, log, err := a.Tools.RunFFmpegLog(ctx, media.MeasurePassArgs(r, video, audio), d, func(p float64) { progress(0.9 * p) })
	if err != nil {
		return 0, nil, err
	}
	m, ok, err := media.ParseEBUR128(log)
	if err != nil {
		return 0, nil, err
	}
	var mp *media.Loudness
	if ok {
		mp = &m
	}
	return length(a.Tools.RunFFmpeg(ctx, media.ApplyPassArgs(r, mp, video, audio), d, func(p float64) { progress(0.9 + 0.1*p) }))
}

// snapChunk moves a chunk's inner edges to the first source keyframe after
// each (one ffprobe reading only those windows). Both chunks that meet at an
// edge find the same keyframe, so they join without a gap or an overlap; a
// failed probe fails the task rather than guessing.
func (a Renderer) snapChunk(ctx context.Context, in *montagev1.RenderInput, r *media.Render) error {
	start, end := in.GetStartSeconds(), in.GetStartSeconds()+in.GetDurationSeconds()
	var edges []float64
	if in.GetSnapStart() {
		edges = append(edges, start)
	}
	if in.GetSnapEnd() {
		edges = append(edges, end)
	}
	kf, err := a.Tools.Keyframes(ctx, r.Video, edges)
	if err != nil {
		return fmt.Errorf("chunk edges: %w", err)
	}
	hs, fps := in.GetHighlightStartSeconds(), r.Profile.FPS
	if in.GetSnapStart() {
		start = media.SnapToKeyframe(start, hs, fps, kf)
	}
	if in.GetSnapEnd() {
		end = media.SnapToKeyframe(end, hs, fps, kf)
	}
	if end-start < 1/fps {
		return fmt.Errorf("chunk edges %.3f..%.3f leave no frame", start, end)
	}
	r.Start, r.Duration = start, media.WholeFrames(end-start, fps)
	return nil
}

func streamInput(s sources.Stream) media.Input {
	kind := media.SourceFile
	if s.HLS {
		kind = media.SourceHLS
	}
	return media.Input{URL: s.URL, Kind: kind, Headers: s.Headers}
}

func fillFacts(f *montagev1.SourceFacts, info media.Info) {
	f.Container, f.VideoCodec, f.AudioCodec = info.Format, info.VideoCodec, info.AudioCodec
	f.Width, f.Height, f.SampleRate, f.Channels = int32(info.Width), int32(info.Height), int32(info.SampleRate), int32(info.Channels)
	f.Fps = media.ParseRate(info.FrameRate)
	if f.DurationSeconds == 0 {
		f.DurationSeconds = info.Duration
	}
}

// concat downloads the committed segments and joins them.
func (a *Agent) concat(ctx context.Context, l *montagev1.Lease, prof media.Profile, dir, out string, progress func(float64)) (float64, map[string]string, error) {
	in := l.GetConcat()
	if u := l.GetConcatInputsUrl(); u != "" {
		// Many inputs: the lease names an object that lists them.
		p := filepath.Join(dir, "concat-inputs.pb")
		if err := a.download(ctx, u, p, l.GetConcatInputsSize(), l.GetConcatInputsSha256()); err != nil {
			return 0, nil, fmt.Errorf("concat inputs: %w", err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, nil, fmt.Errorf("concat inputs: %w", err)
		}
		in = &montagev1.ConcatInput{}
		if err := proto.Unmarshal(b, in); err != nil {
			return 0, nil, fmt.Errorf("concat inputs: %w", err)
		}
	}
	if in == nil || len(in.GetSegments()) == 0 {
		return 0, nil, fmt.Errorf("concat lease without segments")
	}
	// Segments this agent rendered may still be here, their audio encoded
	// ahead (spool); the rest are downloaded, and each is fed to the
	// montage's audio as soon as it is here, while the next downloads.
	// Taken first: a concat that fails frees them at once.
	segs := in.GetSegments()
	kept := a.spool.take(l.GetJobId())
	defer kept.discard()
	if prof.Cut == spec.CutKeyframe {
		if err := keyframeMismatch(segs); err != nil {
			return 0, nil, err
		}
	}
	var ahead *montageAudio
	if kept != nil {
		ahead, kept.audio = kept.audio, nil // the concat's now
	}
	if ahead != nil && !ahead.continues(segs, prof.AudioBitrate) {
		ahead.abort()
		ahead = nil
	}
	encodedAhead := 0
	if ahead != nil {
		encodedAhead = len(ahead.fed)
	} else {
		var err error
		if ahead, err = startMontageAudio(ctx, a.tools, prof.AudioBitrate, filepath.Join(dir, "audio.m4a"), false); err != nil {
			return 0, nil, err
		}
	}
	ahead.hurry()
	paths := make([]string, len(segs))
	ready := make([]chan struct{}, len(segs))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	fctx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	fed := make(chan error, 1)
	go func() {
		for i := len(ahead.fed); i < len(segs); i++ {
			select {
			case <-ready[i]:
			case <-fctx.Done():
				fed <- fctx.Err()
				return
			}
			if err := ahead.add(fctx, paths[i], segs[i].GetSha256(), segs[i].GetDurationSeconds()); err != nil {
				fed <- err
				return
			}
		}
		fed <- nil
	}()
	fail := func(err error) (float64, map[string]string, error) {
		stopFeed()
		<-fed
		ahead.abort()
		return 0, nil, err
	}
	local := 0
	for i, s := range segs {
		if p := kept.segment(i, s); p != "" {
			paths[i] = p
			local++
		} else {
			paths[i] = filepath.Join(dir, fmt.Sprintf("seg-%03d.mp4", i))
			if err := a.download(ctx, s.GetUrl(), paths[i], s.GetSize(), s.GetSha256()); err != nil {
				return fail(fmt.Errorf("segment %d: %w", i, err))
			}
		}
		close(ready[i])
		progress(0.4 * float64(i+1) / float64(len(paths)))
	}
	if err := <-fed; err != nil {
		ahead.abort()
		return 0, nil, err
	}
	// What this agent had of the montage: its segments on disk and their
	// audio encoded ahead (the rest it downloaded and encoded now).
	a.log.Info("concat: segments gathered", "job", l.GetJobId(), "segments_ahead", encodedAhead,
		"segments", len(paths), "segments_local", local)
	written, extras, err := a.renderer().concat(ctx, l.GetJobId(), l.GetProfile(), in.GetSegments(), paths, dir, out, ahead,
		func(p float64) { progress(0.4 + 0.6*p) })
	if err != nil || in.GetSubtitles() == "" {
		return written, extras, err
	}
	if err := a.subtitles(ctx, in, dir, out, extras); err != nil {
		return 0, nil, err
	}
	return written, extras, nil
}

// Concat joins local segments into out and writes the montage's companions:
// chapters.txt (YouTube's description format), a thumbnail and a manifest,
// returned by output name. Chapter times come from the durations the renders
// reported when they committed; the chunks of one highlight make one chapter.
// The montage's audio is encoded once, from the segments in order.
func (a Renderer) Concat(ctx context.Context, jobID string, profile *montagev1.RenderProfile, segs []*montagev1.ConcatSegment, paths []string,
	dir, out string, progress func(float64)) (float64, map[string]string, error) {
	return a.concat(ctx, jobID, profile, segs, paths, dir, out, nil, progress)
}

// concat is Concat carrying on ahead, an encode of the montage's audio
// begun while its segments rendered (see spool), when ahead holds the first
// of segs; otherwise it aborts ahead. It owns ahead.
func (a Renderer) concat(ctx context.Context, jobID string, profile *montagev1.RenderProfile, segs []*montagev1.ConcatSegment, paths []string,
	dir, out string, ahead *montageAudio, progress func(float64)) (float64, map[string]string, error) {
	prof, err := profileOf(profile)
	if ahead != nil && (err != nil || !ahead.continues(segs, prof.AudioBitrate)) {
		ahead.abort()
		ahead = nil
	}
	if err != nil {
		return 0, nil, err
	}
	owned := ahead // until finishAudio takes it, every return aborts it
	defer func() {
		if owned != nil {
			owned.abort()
		}
	}()
	var (
		chapters []media.Chapter
		at       float64
		offsets  = make([]float64, len(segs))
	)
	for i, s := range segs {
		d := s.GetDurationSeconds()
		if d <= 0 {
			return 0, nil, fmt.Errorf("segment %d: no duration recorded", i)
		}
		offsets[i] = at
		if s.GetChunk() == 0 || len(chapters) == 0 {
			title := s.GetTitle()
			if title == "" {
				title = fmt.Sprintf("Highlight %d", s.GetHighlightIndex()+1)
			}
			chapters = append(chapters, media.Chapter{Title: title, Start: at, End: at + d})
		} else {
			chapters[len(chapters)-1].End = at + d
		}
		at += d
	}
	// The thumbnail is the montage's frame, taken from the segment it lies
	// in while the audio is encoded (the concat copies the video unchanged).
	thumb := filepath.Join(dir, "thumbnail.jpg")
	thumbErr := make(chan error, 1)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		seg, local := segmentAt(offsets, thumbnailAt(chapters))
		thumbErr <- a.thumbnail(tctx, paths[seg], local, thumb)
	}()
	list := filepath.Join(dir, "list.ffconcat")
	if err := os.WriteFile(list, []byte(media.ConcatList(paths)), 0o640); err != nil {
		return 0, nil, fmt.Errorf("concat list: %w", err)
	}
	meta := filepath.Join(dir, "chapters.ffmeta")
	if err := os.WriteFile(meta, []byte(media.FFMetadata("", chapters)), 0o640); err != nil {
		return 0, nil, fmt.Errorf("chapters: %w", err)
	}
	// Without an encode ahead the concat makes the same one, the same way:
	// a montage's bytes never depend on which agent rendered what, so a
	// rerun from the cache gives the same file.
	if ahead == nil {
		if ahead, err = startMontageAudio(ctx, a.Tools, prof.AudioBitrate, filepath.Join(dir, "audio.m4a"), false); err != nil {
			return 0, nil, err
		}
	}
	owned = nil
	audio, err := a.finishAudio(ctx, segs, paths, ahead)
	if err != nil {
		return 0, nil, err
	}
	progress(0.5)
	written, err := a.Tools.RunFFmpeg(ctx, media.MuxMontageArgs(list, audio, meta, out, prof.Cut != ""), at,
		func(p float64) { progress(0.5 + 0.4*p) })
	if err != nil {
		return 0, nil, err
	}
	if err := <-thumbErr; err != nil {
		return 0, nil, fmt.Errorf("thumbnail: %w", err)
	}
	extras := map[string]string{}
	chapTxt := filepath.Join(dir, "chapters.txt")
	if err := os.WriteFile(chapTxt, []byte(media.FormatYouTube(media.YouTubeChapters(chapters))), 0o640); err != nil {
		return 0, nil, fmt.Errorf("chapters.txt: %w", err)
	}
	extras["chapters"] = chapTxt
	extras["thumbnail"] = thumb
	man, err := manifest(jobID, profile, prof, segs, chapters, offsets, at)
	if err != nil {
		return 0, nil, err
	}
	manPath := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manPath, man, 0o640); err != nil {
		return 0, nil, fmt.Errorf("manifest: %w", err)
	}
	extras["manifest"] = manPath
	progress(1)
	return written, extras, nil
}

// finishAudio feeds ahead (which continues segs) the segments it lacks and
// returns its M4A.
func (a Renderer) finishAudio(ctx context.Context, segs []*montagev1.ConcatSegment, paths []string, m *montageAudio) (string, error) {
	m.hurry()
	for i := len(m.fed); i < len(segs); i++ {
		if err := m.add(ctx, paths[i], segs[i].GetSha256(), segs[i].GetDurationSeconds()); err != nil {
			m.abort()
			return "", err
		}
	}
	if err := m.finish(); err != nil {
		return "", err
	}
	return m.path, nil
}

// thumbnail writes the first keyframe at or after `at` of a segment as the
// montage's thumbnail, or the frame at `at` when no keyframe follows it.
func (a Renderer) thumbnail(ctx context.Context, seg string, at float64, out string) error {
	_ = os.Remove(out)
	if _, err := a.Tools.RunFFmpeg(ctx, media.ThumbnailArgs(seg, at, true, out), 0, nil); err != nil {
		return err
	}
	if st, err := os.Stat(out); err == nil && st.Size() > 0 {
		return nil
	}
	_, err := a.Tools.RunFFmpeg(ctx, media.ThumbnailArgs(seg, at, false, out), 0, nil)
	return err
}

// thumbnailAt picks a frame a third into the first highlight: past its fade
// and title, still the montage's opening moment (the thumbnail is the first
// keyframe from there, at most a GOP later).
func thumbnailAt(chapters []media.Chapter) float64 {
	c := chapters[0]
	return c.Start + (c.End-c.Start)/3
}

// segmentAt finds the segment that shows montage time t and the time
// within it.
func segmentAt(offsets []float64, t float64) (int, float64) {
	for i := len(offsets) - 1; i > 0; i-- {
		if t >= offsets[i] {
			return i, t - offsets[i]
		}
	}
	return 0, t
}

// download fetches a committed object and checks it is what the
// coordinator accepted (size and SHA-256, when the lease says).
func (a *Agent) download(ctx context.Context, url, path string, size int64, sha string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("download: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err != nil {
		f.Close()
		return fmt.Errorf("download: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); sha != "" && (got != strings.ToLower(sha) || size > 0 && n != size) {
		return fmt.Errorf("download: got %d bytes with SHA-256 %s, but the coordinator accepted %d bytes with %s: the stored object changed", n, got, size, sha)
	}
	return nil
}

// upload sends the output to its presigned URL, or in parts when it is over
// the lease's threshold, and returns what the coordinator checks before it
// commits: size, SHA-256 and, for parts, their ETags (and SHA-256s).
func (a *Agent) upload(ctx context.Context, path string, l *montagev1.Lease) (*montagev1.TaskResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	size := st.Size()
	parted := l.GetMultipartThresholdBytes() > 0 && size > l.GetMultipartThresholdBytes()
	var partSize int64
	if parted && l.GetChecksummedUpload() {
		partSize = multipart.PartSize(size, l.GetPartSizeBytes())
	}
	sum, partSums, err := hashFile(f, size, partSize)
	if err != nil {
		return nil, fmt.Errorf("upload: hash: %w", err)
	}
	res := &montagev1.TaskResult{Key: l.GetOutputKey(), Size: size, Sha256: sum}
	if parted {
		if err := a.uploadParts(ctx, f, size, l, res, partSums); err != nil {
			return nil, err
		}
		return res, nil
	}
	url, hdr := l.GetOutputPutUrl(), ""
	if l.GetChecksummedUpload() {
		// The store checks the bytes against the SHA-256 signed into the
		// URL: the coordinator then needs no read-back.
		start, err := a.startUpload(ctx, l, size, sum, nil)
		if err != nil {
			return nil, err
		}
		url, hdr = start.GetPutUrl(), sum
	}
	if _, err := a.put(ctx, url, io.NewSectionReader(f, 0, size), size, true, hdr); err != nil && !errors.Is(err, errExists) {
		return nil, err
	}
	return res, nil
}

// hashFile returns the SHA-256 (hex) of the file's size bytes and, when
// partSize is set, of each part of that size, in one read.
func hashFile(f *os.File, size, partSize int64) (string, []string, error) {
	whole := sha256.New()
	if partSize <= 0 {
		if _, err := io.Copy(whole, io.NewSectionReader(f, 0, size)); err != nil {
			return "", nil, err
		}
		return hex.EncodeToString(whole.Sum(nil)), nil, nil
	}
	var parts []string
	for off := int64(0); off < size; off += partSize {
		ph := sha256.New()
		if _, err := io.Copy(io.MultiWriter(whole, ph), io.NewSectionReader(f, off, min(partSize, size-off))); err != nil {
			return "", nil, err
		}
		parts = append(parts, hex.EncodeToString(ph.Sum(nil)))
	}
	return hex.EncodeToString(whole.Sum(nil)), parts, nil
}

// startUpload asks the coordinator for the URLs of this lease's output.
func (a *Agent) startUpload(ctx context.Context, l *montagev1.Lease, size int64, sum string, partSums []string) (*montagev1.StartUploadResponse, error) {
	var start *montagev1.StartUploadResponse
	err := a.report(ctx, func(ctx context.Context) error {
		r, err := a.client.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{
			AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Size: size, Sha256: sum, PartSha256: partSums,
		}))
		if err == nil {
			start = r.Msg
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	return start, nil
}

// errExists: the store already holds the object at this grant's key. That
// happens when this lease was sent again after an upload whose report was
// lost; the coordinator's checksum check then decides whether it is ours.
var errExists = errors.New("object exists")

// uploadSmall PUTs a small file in one request and returns its size and hash.
func (a *Agent) uploadSmall(ctx context.Context, path, url string) (*montagev1.OutputObject, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	sum := sha256.Sum256(b)
	if _, err := a.put(ctx, url, bytes.NewReader(b), int64(len(b)), true, ""); err != nil && !errors.Is(err, errExists) {
		return nil, err
	}
	return &montagev1.OutputObject{Size: int64(len(b)), Sha256: hex.EncodeToString(sum[:])}, nil
}

// put PUTs n bytes and returns the ETag the store answered with.
// whole marks an object's single PUT (not a multipart part, which S3 does
// not let be conditional): it is written once. sum, when set, is the
// SHA-256 (hex) the URL was signed with, sent for the store to check.
func (a *Agent) put(ctx context.Context, url string, body io.Reader, n int64, whole bool, sum string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	req.ContentLength = n
	if sum != "" {
		b, err := hex.DecodeString(sum)
		if err != nil {
			return "", fmt.Errorf("upload: sha256 %q: %w", sum, err)
		}
		req.Header.Set("x-amz-checksum-sha256", base64.StdEncoding.EncodeToString(b))
	}
	if whole {
		// Write once: a store that supports it refuses to replace an
		// object, so a replayed PUT cannot change an accepted result.
		req.Header.Set("If-None-Match", "*")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusPreconditionFailed && req.Header.Get("If-None-Match") == "*" {
		return "", errExists
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("upload: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return strings.Trim(resp.Header.Get("ETag"), `"`), nil
}

// uploadParts sends the file through a multipart upload the coordinator
// opens for this lease. Each part's ETag must be the MD5 of what was sent,
// so a part damaged on the way is caught here, not after the concat.
func (a *Agent) uploadParts(ctx context.Context, f *os.File, size int64, l *montagev1.Lease, res *montagev1.TaskResult, partSums []string) error {
	start, err := a.startUpload(ctx, l, size, "", partSums)
	if err != nil {
		return err
	}
	part := start.GetPartSize()
	for i, u := range start.GetPartUrls() {
		off := int64(i) * part
		n := min(part, size-off)
		m := md5.New()
		var ps string
		if partSums != nil {
			if len(partSums) != len(start.GetPartUrls()) {
				return fmt.Errorf("start upload: %d part URLs for %d parts", len(start.GetPartUrls()), len(partSums))
			}
			ps = partSums[i]
		}
		etag, err := a.put(ctx, u, io.TeeReader(io.NewSectionReader(f, off, n), m), n, false, ps)
		if err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
		if want := hex.EncodeToString(m.Sum(nil)); etag != want {
			return fmt.Errorf("part %d: store answered ETag %q for bytes with MD5 %s", i+1, etag, want)
		}
		res.Parts = append(res.Parts, &montagev1.UploadedPart{Number: int32(i + 1), Etag: etag, Sha256: ps})
	}
	if u := start.GetCompleteUrl(); u != "" {
		// Joining the parts is part of the upload: the coordinator only
		// checks the stored checksum against the parts' sums.
		return a.completeUpload(ctx, u, res.GetParts())
	}
	res.UploadId = start.GetUploadId()
	return nil
}

// completeUpload POSTs the part list to the presigned completion URL. S3
// may answer 200 and still report an error in the body.
func (a *Agent) completeUpload(ctx context.Context, url string, parts []*montagev1.UploadedPart) error {
	list := make([]multipart.Part, len(parts))
	for i, p := range parts {
		list[i] = multipart.Part{Number: p.GetNumber(), ETag: p.GetEtag(), SHA256: p.GetSha256()}
	}
	body, err := multipart.CompleteDocument(list)
	if err != nil {
		return fmt.Errorf("complete upload: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("complete upload: %w", err)
	}
	req.Header.Set("Content-Type", "application/xml")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("complete upload: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 || bytes.Contains(b, []byte("<Error>")) {
		return fmt.Errorf("complete upload: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b[:min(len(b), 512)])))
	}
	return nil
}
