// Command direct does a job spec's media work as one plain sequential loop:
// for each render the same ffprobe/ffmpeg commands an agent runs (through
// the agent's own Renderer), then the concat and its companions, all on
// local files. bench/overhead.sh times it against the farm doing the job.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/sources"
	"github.com/stream-montages/montage/agent/worker"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/planner"
	"github.com/stream-montages/montage/ctl/specfile"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "direct:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: direct SPEC WORKDIR")
	}
	s, err := specfile.Load(os.Args[1])
	if err != nil {
		return err
	}
	r, err := spec.Validate(s)
	if err != nil {
		return err
	}
	r.Profile.Encoder = spec.SoftwareEncoder(r.Profile.VideoCodec)
	job, tasks, err := planner.Plan("direct", s, r, planner.Options{})
	if err != nil {
		return err
	}
	tools, err := media.FindTools()
	if err != nil {
		return err
	}
	yt, _ := sources.Find()
	proxy, err := sources.StartRangeProxy(http.DefaultClient)
	if err != nil {
		return err
	}
	defer proxy.Close()
	rd := worker.Renderer{Tools: tools, YTDLP: yt, Font: media.FindFont(context.Background(), ""), Proxy: proxy}
	dir, err := filepath.Abs(os.Args[2])
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	prof := r.Profile.ToProto()
	mp := media.Profile{Width: r.Profile.Width, Height: r.Profile.Height, FPS: r.Profile.FPS, Quality: r.Profile.Quality,
		AudioBitrate: fmt.Sprintf("%dk", r.Profile.AudioBitrate/1000), Encoder: r.Profile.Encoder,
		Crop: r.Profile.Fit == spec.FitCrop, Fade: r.Profile.Fade}
	if !r.Profile.LoudnessOff {
		mp.Loudness = r.Profile.Loudness
	}
	ctx := context.Background()
	var (
		segs  []*montagev1.ConcatSegment
		paths []string
	)
	// The plan names each source once per job; a state holding it tells
	// each render its URL, as the coordinator does for a lease.
	st := fsm.New()
	st.Apply(1, &fsm.Command{Submit: &fsm.SubmitCmd{Job: job, Tasks: tasks}})
	for _, t := range tasks {
		if t.Render == nil {
			continue
		}
		in := *t.Render
		in.URL = st.SourceOf(st.Tasks[t.ID])
		out := filepath.Join(dir, t.ID+".mp4")
		d, _, err := rd.Render(ctx, &montagev1.RenderInput{
			SourceUrl: in.URL, SourceType: in.SourceType, StartSeconds: in.Start, DurationSeconds: in.Duration, Title: in.Title,
			FadeIn: in.FadeIn, FadeOut: in.FadeOut, OverlayTitle: in.OverlayTitle, TitleSeconds: in.TitleSeconds,
		}, mp, dir, out, func(float64) {})
		if err != nil {
			return fmt.Errorf("render %s: %w", t.ID, err)
		}
		segs = append(segs, &montagev1.ConcatSegment{Title: in.Title, DurationSeconds: d, HighlightIndex: int32(t.HighlightIndex),
			Role: t.Role, Chunk: int32(t.Chunk), Chunks: int32(t.Chunks), SourceUrl: in.URL, SourceStartSeconds: in.Start})
		paths = append(paths, out)
	}
	_, _, err = rd.Concat(ctx, "direct", prof, segs, paths, dir, filepath.Join(dir, "montage.mp4"), func(float64) {})
	return err
}
