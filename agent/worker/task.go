package worker

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

func profileOf(p *montagev1.RenderProfile) (media.Profile, error) {
	r, err := spec.ResolveProfile(p)
	if err != nil {
		return media.Profile{}, fmt.Errorf("lease profile: %w", err)
	}
	return media.Profile{
		Width: r.Width, Height: r.Height, FPS: r.FPS, Quality: r.Quality,
		AudioBitrate: strconv.Itoa(r.AudioBitrate/1000) + "k",
	}, nil
}

// runTask does the work of one lease in a private directory and uploads the
// result; the caller reports it.
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
	out := filepath.Join(dir, "out.mp4")
	var written float64
	switch l.GetType() {
	case montagev1.TaskType_TASK_TYPE_RENDER:
		written, err = a.render(ctx, l.GetRender(), prof, out, progress)
	case montagev1.TaskType_TASK_TYPE_CONCAT:
		written, err = a.concat(ctx, l.GetConcat(), prof, dir, out, progress)
	default:
		err = fmt.Errorf("task type %s is not supported by this agent", l.GetType())
	}
	if err != nil {
		return nil, err
	}
	if written <= 0 {
		return nil, fmt.Errorf("ffmpeg wrote no media (is the highlight past the end of the source?)")
	}
	res, err := a.upload(ctx, out, l)
	if err != nil {
		return nil, err
	}
	res.DurationSeconds = written
	return res, nil
}

// render cuts one highlight; the ffmpeg command maps exactly one video and
// one audio stream, so a segment that exists has both.
func (a *Agent) render(ctx context.Context, in *montagev1.RenderInput, prof media.Profile, out string, progress func(float64)) (float64, error) {
	if in == nil {
		return 0, fmt.Errorf("render lease without input")
	}
	if err := spec.CheckSourceURL(in.GetSourceUrl()); err != nil {
		return 0, fmt.Errorf("source url: %w", err)
	}
	kind := media.KindOf(in.GetSourceUrl())
	info, err := a.tools.Probe(ctx, in.GetSourceUrl(), kind)
	if err != nil {
		return 0, fmt.Errorf("probe source %s: %w", in.GetSourceUrl(), err)
	}
	if !info.HasVideo {
		return 0, fmt.Errorf("source %s has no video stream", in.GetSourceUrl())
	}
	if info.Duration > 0 && in.GetStartSeconds() >= info.Duration {
		return 0, fmt.Errorf("highlight starts at %s but the source is only %s long",
			spec.FormatTimestamp(in.GetStartSeconds()), spec.FormatTimestamp(info.Duration))
	}
	args := media.RenderArgs(media.Render{
		Source: in.GetSourceUrl(), Kind: kind, Start: in.GetStartSeconds(), Duration: in.GetDurationSeconds(),
		HasAudio: info.HasAudio, Profile: prof, Output: out,
	})
	return a.tools.RunFFmpeg(ctx, args, in.GetDurationSeconds(), progress)
}

// concat joins the committed segments. Chapter times come from the
// durations the render attempts reported when they committed.
func (a *Agent) concat(ctx context.Context, in *montagev1.ConcatInput, prof media.Profile, dir, out string, progress func(float64)) (float64, error) {
	if in == nil || len(in.GetSegments()) == 0 {
		return 0, fmt.Errorf("concat lease without segments")
	}
	var (
		paths    []string
		chapters []media.Chapter
		at       float64
	)
	for i, s := range in.GetSegments() {
		p := filepath.Join(dir, fmt.Sprintf("seg-%03d.mp4", i))
		if err := a.download(ctx, s.GetUrl(), p); err != nil {
			return 0, fmt.Errorf("segment %d: %w", i, err)
		}
		d := s.GetDurationSeconds()
		if d <= 0 {
			return 0, fmt.Errorf("segment %d: no duration recorded", i)
		}
		title := s.GetTitle()
		if title == "" {
			title = fmt.Sprintf("Highlight %d", i+1)
		}
		chapters = append(chapters, media.Chapter{Title: title, Start: at, End: at + d})
		at += d
		paths = append(paths, p)
		progress(0.5 * float64(i+1) / float64(len(in.GetSegments())))
	}
	list := filepath.Join(dir, "list.ffconcat")
	if err := os.WriteFile(list, []byte(media.ConcatList(paths)), 0o640); err != nil {
		return 0, fmt.Errorf("concat list: %w", err)
	}
	meta := filepath.Join(dir, "chapters.ffmeta")
	if err := os.WriteFile(meta, []byte(media.FFMetadata("", chapters)), 0o640); err != nil {
		return 0, fmt.Errorf("chapters: %w", err)
	}
	return a.tools.RunFFmpeg(ctx, media.ConcatArgs(list, meta, prof.AudioBitrate, out), at,
		func(p float64) { progress(0.5 + 0.5*p) })
}

func (a *Agent) download(ctx context.Context, url, path string) error {
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
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("download: %w", err)
	}
	return f.Close()
}

// upload sends the output to its presigned URL, or in parts when it is over
// the lease's threshold, and returns what the coordinator checks before it
// commits: size, SHA-256 and, for parts, their ETags.
func (a *Agent) upload(ctx context.Context, path string, l *montagev1.Lease) (*montagev1.TaskResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("upload: hash: %w", err)
	}
	res := &montagev1.TaskResult{Key: l.GetOutputKey(), Size: size, Sha256: hex.EncodeToString(h.Sum(nil))}
	if t := l.GetMultipartThresholdBytes(); t > 0 && size > t {
		if err := a.uploadParts(ctx, f, size, l, res); err != nil {
			return nil, err
		}
		return res, nil
	}
	if _, err := a.put(ctx, l.GetOutputPutUrl(), io.NewSectionReader(f, 0, size), size); err != nil {
		return nil, err
	}
	return res, nil
}

// put PUTs n bytes and returns the ETag the store answered with.
func (a *Agent) put(ctx context.Context, url string, body io.Reader, n int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	req.ContentLength = n
	resp, err := a.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("upload: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return strings.Trim(resp.Header.Get("ETag"), `"`), nil
}

// uploadParts sends the file through a multipart upload the coordinator
// opens for this lease. Each part's ETag must be the MD5 of what was sent,
// so a part damaged on the way is caught here, not after the concat.
func (a *Agent) uploadParts(ctx context.Context, f *os.File, size int64, l *montagev1.Lease, res *montagev1.TaskResult) error {
	var start *montagev1.StartUploadResponse
	err := a.report(ctx, func(ctx context.Context) error {
		r, err := a.client.StartUpload(ctx, connect.NewRequest(&montagev1.StartUploadRequest{
			AgentId: a.id, TaskId: l.GetTaskId(), Token: l.GetToken(), Size: size,
		}))
		if err == nil {
			start = r.Msg
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	part := start.GetPartSize()
	for i, u := range start.GetPartUrls() {
		off := int64(i) * part
		n := min(part, size-off)
		m := md5.New()
		etag, err := a.put(ctx, u, io.TeeReader(io.NewSectionReader(f, off, n), m), n)
		if err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
		if want := hex.EncodeToString(m.Sum(nil)); etag != want {
			return fmt.Errorf("part %d: store answered ETag %q for bytes with MD5 %s", i+1, etag, want)
		}
		res.Parts = append(res.Parts, &montagev1.UploadedPart{Number: int32(i + 1), Etag: etag})
	}
	res.UploadId = start.GetUploadId()
	return nil
}
