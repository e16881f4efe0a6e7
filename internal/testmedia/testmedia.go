// Package testmedia makes small sample "stream VODs" with ffmpeg's lavfi
// sources and serves them over HTTP with range support, for tests and the
// demo. Nothing large is committed: every file is generated at run time.
package testmedia

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
)

// Source describes one sample to generate.
type Source struct {
	Name       string // file name, e.g. "vod-a.mp4"
	Width      int
	Height     int
	FPS        string // e.g. "30", "25", "60000/1001"
	SampleRate int    // 0: no audio
	Channels   int
	Seconds    float64
	HLS        bool // also write NAME without extension + ".m3u8" with 2-s segments
	// Sync replaces the pattern and tone by sync markers: a black picture
	// with a white flash and silence with a 1 kHz beep, both starting at
	// every whole second of the source and lasting 100 ms.
	Sync bool
	// BeepLevel is the beep's amplitude (0..1; default 0.5), so sources of
	// different loudness can be made.
	BeepLevel float64
	// Codec is "h264" (default) or "hevc".
	Codec string
	// Flat replaces the pattern by a flat dark blue picture, against which
	// burned-in text stands out (see BrightPixels).
	Flat bool
	// Streamlike encodes H.264 as streaming encoders do (High profile,
	// B-frames with pyramid, so frames are reordered) instead of the
	// quickest x264 preset (Constrained Baseline, no reordering).
	Streamlike bool
	// OpenGOP makes Streamlike's GOPs open: frames before each keyframe
	// reference the GOP before it.
	OpenGOP bool
	// GOPSeconds is the keyframe interval (0: two seconds, as streaming
	// platforms use); HLS segments are cut at keyframes.
	GOPSeconds float64
}

// Samples is the demo's set: different sizes, frame rates and audio rates,
// one without audio, one also as HLS.
func Samples(seconds float64) []Source {
	return []Source{
		{Name: "vod-a.mp4", Width: 1280, Height: 720, FPS: "30", SampleRate: 48000, Channels: 2, Seconds: seconds},
		{Name: "vod-b.mp4", Width: 640, Height: 480, FPS: "25", SampleRate: 44100, Channels: 1, Seconds: seconds, HLS: true},
		{Name: "vod-c.mp4", Width: 854, Height: 480, FPS: "60000/1001", Seconds: seconds},
	}
}

// Generate writes src into dir using ffmpeg. A changing test pattern and a
// tone make cuts visible and audible.
func Generate(ctx context.Context, dir string, src Source) error {
	out := filepath.Join(dir, src.Name)
	// Write beside and rename, so a server already serving dir never hands
	// out a half-written file.
	tmp := filepath.Join(dir, ".tmp-"+src.Name)
	defer os.Remove(tmp)
	video := fmt.Sprintf("testsrc2=size=%dx%d:rate=%s:duration=%s", src.Width, src.Height, src.FPS, ff(src.Seconds))
	if src.Flat {
		video = fmt.Sprintf("color=c=0x182848:size=%dx%d:rate=%s:duration=%s", src.Width, src.Height, src.FPS, ff(src.Seconds))
	}
	if src.Sync {
		video = fmt.Sprintf("color=c=black:size=%dx%d:rate=%s:duration=%s,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t,1),%s)'",
			src.Width, src.Height, src.FPS, ff(src.Seconds), ff(MarkerSeconds))
	}
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", video}
	if src.SampleRate > 0 {
		layout := "mono"
		if src.Channels == 2 {
			layout = "stereo"
		}
		audio := fmt.Sprintf("sine=frequency=440:sample_rate=%d:duration=%s", src.SampleRate, ff(src.Seconds))
		if src.Sync {
			level := src.BeepLevel
			if level == 0 {
				level = 0.5
			}
			audio = fmt.Sprintf("aevalsrc=%s*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,%s):sample_rate=%d:duration=%s",
				ff(level), ff(MarkerSeconds), src.SampleRate, ff(src.Seconds))
		}
		args = append(args, "-f", "lavfi", "-i", audio+",aformat=channel_layouts="+layout)
	}
	// A keyframe every two seconds, like a streaming encoder, so the HLS
	// variant has segments of exactly two seconds.
	gop := gopOf(src.FPS, src.GOPSeconds)
	if src.Codec == "hevc" {
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1", "-g", gop, "-pix_fmt", "yuv420p")
	} else {
		preset := "ultrafast"
		if src.Streamlike {
			preset = "superfast" // quick; the B-frames are set below
		}
		args = append(args, "-c:v", "libx264", "-preset", preset, "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-pix_fmt", "yuv420p")
		if src.Streamlike {
			args = append(args, "-profile:v", "high", "-bf", "3", "-b-pyramid", "normal")
			if src.OpenGOP {
				args = append(args, "-x264-params", "open-gop=1")
			}
		}
	}
	if src.SampleRate > 0 {
		args = append(args, "-c:a", "aac", "-b:a", "96k")
	}
	args = append(args, "-movflags", "+faststart", "-f", "mp4", tmp)
	if b, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("generate %s: %v: %s", src.Name, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("generate %s: %w", src.Name, err)
	}
	if src.HLS {
		base := src.Name[:len(src.Name)-len(filepath.Ext(src.Name))]
		hls := []string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-i", out, "-c", "copy",
			"-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
			"-hls_segment_filename", filepath.Join(dir, base+"-%03d.ts"), filepath.Join(dir, base+".m3u8")}
		if b, err := exec.CommandContext(ctx, "ffmpeg", hls...).CombinedOutput(); err != nil {
			return fmt.Errorf("generate %s HLS: %v: %s", src.Name, err, b)
		}
	}
	return nil
}

// GenerateAll writes every source into dir.
func GenerateAll(ctx context.Context, dir string, srcs []Source) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, s := range srcs {
		if err := Generate(ctx, dir, s); err != nil {
			return err
		}
	}
	return nil
}

// gopOf is that many seconds of frames (0: two) at a rate like "30" or
// "60000/1001".
func gopOf(fps string, seconds float64) string {
	if seconds <= 0 {
		seconds = 2
	}
	n, d, found := strings.Cut(fps, "/")
	num, _ := strconv.ParseFloat(n, 64)
	den := 1.0
	if found {
		den, _ = strconv.ParseFloat(d, 64)
	}
	if num <= 0 || den <= 0 {
		return strconv.Itoa(int(math.Round(30 * seconds)))
	}
	return strconv.Itoa(int(math.Round(seconds * num / den)))
}

// MarkerSeconds is how long each sync flash and beep lasts.
const MarkerSeconds = 0.1

func ff(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Server serves a directory with range requests and counts bytes sent.
type Server struct {
	URL       string
	BytesSent atomic.Int64
	srv       *http.Server
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Serve starts an HTTP file server for dir on addr ("127.0.0.1:0" for any port).
func Serve(dir, addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve samples: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String()}
	fs := http.FileServer(http.Dir(dir))
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.ServeHTTP(countingWriter{w, &s.BytesSent}, r)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }
