package media

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Tools locates ffmpeg and ffprobe.
type Tools struct {
	FFmpeg  string
	FFprobe string
	// Threads caps the CPUs an ffmpeg run may use (0: all).
	Threads int
}

// FindTools looks both programs up on PATH and says how to install them if
// they are missing.
func FindTools() (Tools, error) {
	ff, err1 := exec.LookPath("ffmpeg")
	fp, err2 := exec.LookPath("ffprobe")
	if err1 != nil || err2 != nil {
		return Tools{}, errors.New("ffmpeg and ffprobe are required and were not found on PATH; install them (Debian/Ubuntu: sudo apt-get install -y ffmpeg)")
	}
	return Tools{FFmpeg: ff, FFprobe: fp}, nil
}

// Version returns the first line of `prog -version`.
func Version(ctx context.Context, prog string) (string, error) {
	out, err := exec.CommandContext(ctx, prog, "-hide_banner", "-version").Output()
	if err != nil {
		return "", fmt.Errorf("%s -version: %w", prog, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// tail keeps the last n bytes written, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
	n   int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = t.buf[len(t.buf)-t.n:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// RunFFmpeg runs ffmpeg with args that include "-progress pipe:1", calling
// progress with the fraction of total seconds done, and returns the length of
// what it wrote (the last out_time), which spares an ffprobe of the output:
// each ffprobe start costs a quarter of a second here. Canceling ctx kills
// ffmpeg. The error carries the end of ffmpeg's stderr.
func (t Tools) RunFFmpeg(ctx context.Context, args []string, total float64, progress func(float64)) (float64, error) {
	written, _, err := t.RunFFmpegLog(ctx, args, total, progress)
	return written, err
}

// RunFFmpegLog is RunFFmpeg that also returns the end of ffmpeg's stderr,
// where filters like loudnorm print what they measured.
func (t Tools) RunFFmpegLog(ctx context.Context, args []string, total float64, progress func(float64)) (float64, string, error) {
	cmd := exec.CommandContext(ctx, t.FFmpeg, args...)
	stderr := &tail{n: 16384}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, "", fmt.Errorf("ffmpeg: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start ffmpeg: %w", err)
	}
	// Renders run at the lowest priority the platform offers: the PC's
	// owner comes first. A failure to lower it is not worth the render.
	_ = lower(cmd.Process.Pid, t.Threads)
	written := parseProgress(stdout, total, progress)
	err = cmd.Wait()
	if ctx.Err() != nil {
		return 0, "", fmt.Errorf("ffmpeg stopped: %w", ctx.Err())
	}
	if err != nil {
		msg := stderr.String()
		if len(msg) > 2048 {
			msg = msg[len(msg)-2048:]
		}
		if msg == "" {
			msg = "no message"
		}
		return 0, "", fmt.Errorf("ffmpeg failed (%v): %s", err, msg)
	}
	return written, stderr.String(), nil
}

// Feed is a running ffmpeg that reads its input from a pipe: several other
// ffmpegs write into it one after another (RunFFmpegTo), without the data
// passing through this process.
type Feed struct {
	cmd    *exec.Cmd
	w      *os.File
	stderr *tail
	done   chan struct{}
	err    error
}

// StartFeed starts ffmpeg with args that read pipe:0; with background, it
// runs only on CPU time nothing else wants (see Hurry).
func (t Tools) StartFeed(ctx context.Context, args []string, background bool) (*Feed, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg pipe: %w", err)
	}
	cmd := exec.CommandContext(ctx, t.FFmpeg, args...)
	f := &Feed{cmd: cmd, w: w, stderr: &tail{n: 4096}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stderr = r, f.stderr
	err = cmd.Start()
	r.Close() // the child holds its own copy
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	_ = lower(cmd.Process.Pid, t.Threads)
	if background {
		_ = idle(cmd.Process.Pid)
	}
	go func() {
		defer close(f.done)
		if err := cmd.Wait(); err != nil {
			f.err = fmt.Errorf("ffmpeg failed (%v): %s", err, f.stderr.String())
		}
	}()
	return f, nil
}

// Hurry gives a background feed the renders' priority: it is needed now.
func (f *Feed) Hurry() {
	_ = normal(f.cmd.Process.Pid)
}

// Prioritize gives a background ffmpeg (RunFFmpegTo) the renders' priority.
func Prioritize(pid int) { _ = normal(pid) }

// Input is where writers put what the feed's ffmpeg reads.
func (f *Feed) Input() *os.File { return f.w }

// Exited tells whether the feed's ffmpeg ended (it should not before
// Finish), and how.
func (f *Feed) Exited() (bool, error) {
	select {
	case <-f.done:
		if f.err == nil {
			return true, errors.New("ffmpeg ended before its input did")
		}
		return true, f.err
	default:
		return false, nil
	}
}

// Finish ends the input and waits for ffmpeg to write its output.
func (f *Feed) Finish() error {
	f.w.Close()
	<-f.done
	return f.err
}

// Abort kills the feed's ffmpeg.
func (f *Feed) Abort() {
	f.w.Close()
	_ = f.cmd.Process.Kill()
	<-f.done
}

// RunFFmpegTo runs ffmpeg with its stdout going straight to w (a pipe's
// write end: the child writes into it itself); with background, only on CPU
// time nothing else wants.
// started, when set, learns the process id as soon as it runs.
func (t Tools) RunFFmpegTo(ctx context.Context, args []string, w *os.File, background bool, started func(pid int)) error {
	cmd := exec.CommandContext(ctx, t.FFmpeg, args...)
	stderr := &tail{n: 4096}
	cmd.Stdout, cmd.Stderr = w, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	_ = lower(cmd.Process.Pid, t.Threads)
	if background {
		_ = idle(cmd.Process.Pid)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ffmpeg stopped: %w", ctx.Err())
		}
		return fmt.Errorf("ffmpeg failed (%v): %s", err, stderr.String())
	}
	return nil
}

// parseProgress reads ffmpeg's key=value progress blocks and returns the
// last output time in seconds.
func parseProgress(r io.Reader, total float64, progress func(float64)) float64 {
	sc := bufio.NewScanner(r)
	last := 0.0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		// out_time_us is microseconds despite ffmpeg also printing out_time_ms.
		if !ok || k != "out_time_us" {
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || us < 0 {
			continue
		}
		last = float64(us) / 1e6
		if progress != nil && total > 0 {
			progress(min(last/total, 1))
		}
	}
	_, _ = io.Copy(io.Discard, r)
	return last
}

// Info is what ffprobe tells about a file or source.
type Info struct {
	Duration   float64
	Format     string
	HasVideo   bool
	HasAudio   bool
	VideoCodec string
	AudioCodec string
	Width      int
	Height     int
	FrameRate  string
	SampleRate int
	Channels   int
}

type probeJSON struct {
	Streams []struct {
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		RFrameRate string `json:"r_frame_rate"`
		SampleRate string `json:"sample_rate"`
		Channels   int    `json:"channels"`
	} `json:"streams"`
	Format struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
}

// ParseProbe reads ffprobe's JSON.
func ParseProbe(b []byte) (Info, error) {
	var p probeJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return Info{}, fmt.Errorf("ffprobe output: %w", err)
	}
	info := Info{Format: p.Format.FormatName}
	info.Duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			if !info.HasVideo {
				info.HasVideo, info.VideoCodec, info.Width, info.Height, info.FrameRate = true, s.CodecName, s.Width, s.Height, s.RFrameRate
			}
		case "audio":
			if !info.HasAudio {
				info.HasAudio, info.AudioCodec, info.Channels = true, s.CodecName, s.Channels
				info.SampleRate, _ = strconv.Atoi(s.SampleRate)
			}
		}
	}
	return info, nil
}

// Probe runs ffprobe on a source or file.
func (t Tools) Probe(ctx context.Context, in Input) (Info, error) {
	cmd := exec.CommandContext(ctx, t.FFprobe, ProbeArgs(in)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[len(msg)-2048:]
		}
		return Info{}, fmt.Errorf("ffprobe failed (%v): %s", err, msg)
	}
	return ParseProbe(out)
}

// ParseEBUR128 reads the last summary MeasureFilter printed. ok is false
// when the audio was silence (below the absolute gate of -70 LUFS), which
// needs no levelling.
func ParseEBUR128(stderr string) (m Loudness, ok bool, err error) {
	i := strings.LastIndex(stderr, "Summary:")
	if i < 0 {
		return Loudness{}, false, fmt.Errorf("ebur128 printed no summary")
	}
	// The first value after each label, in the order the summary prints
	// them: integrated loudness and its gate, range, true peak.
	rest := stderr[i:]
	value := func(label string) (float64, bool) {
		j := strings.Index(rest, label)
		if j < 0 {
			return 0, false
		}
		rest = rest[j+len(label):]
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil && !math.IsNaN(v)
	}
	var okI, okT, okLRA, okTP bool
	m.I, okI = value("I:")
	m.Thresh, okT = value("Threshold:")
	m.LRA, okLRA = value("LRA:")
	m.TP, okTP = value("Peak:")
	if !okI || !okT || !okLRA || !okTP {
		return Loudness{}, false, fmt.Errorf("ebur128 summary is cut off")
	}
	if m.I <= -70 || math.IsInf(m.TP, -1) {
		return Loudness{}, false, nil
	}
	return m, true, nil
}

// ParseRate reads ffprobe's "30000/1001" frame rates; 0 when unknown.
func ParseRate(r string) float64 {
	n, d, ok := strings.Cut(r, "/")
	num, err1 := strconv.ParseFloat(n, 64)
	if !ok {
		if err1 != nil {
			return 0
		}
		return num
	}
	den, err2 := strconv.ParseFloat(d, 64)
	if err1 != nil || err2 != nil || den == 0 {
		return 0
	}
	return math.Round(num/den*1000) / 1000
}

// CutProbe runs CutProbeArgs.
func (t Tools) CutProbe(ctx context.Context, in Input, from, to float64) (VideoParams, []Packet, error) {
	cmd := exec.CommandContext(ctx, t.FFprobe, CutProbeArgs(in, from, to)...)
	stderr := &tail{n: 4096}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return VideoParams{}, nil, fmt.Errorf("ffprobe packets: %w: %s", err, stderr.String())
	}
	return ParseCutProbe(out)
}
