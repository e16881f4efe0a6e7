// Package sources resolves web pages (YouTube, Twitch, ...) to the media
// URLs ffmpeg reads, with yt-dlp. Parsing its JSON is pure and tested on
// fixtures; running it is a thin wrapper.
package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/stream-montages/montage/internal/spec"
)

// Stream is one media URL with the headers its server wants.
type Stream struct {
	URL      string
	Headers  map[string]string
	Protocol string // yt-dlp's: https, m3u8_native, ...
	HLS      bool
}

// Resolved is a page resolved to a video stream and, when the site serves
// them apart (YouTube's DASH formats), a separate audio stream.
type Resolved struct {
	Video     Stream
	Audio     *Stream
	HasAudio  bool
	Extractor string
	// Identity names the video and formats yt-dlp chose (extractor, video
	// id, format ids): what the segment cache compares.
	Identity string
	Duration float64
	Width    int
	Height   int
	FPS      float64
}

type format struct {
	URL         string            `json:"url"`
	Protocol    string            `json:"protocol"`
	HTTPHeaders map[string]string `json:"http_headers"`
	VCodec      string            `json:"vcodec"`
	ACodec      string            `json:"acodec"`
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	FPS         float64           `json:"fps"`
}

type info struct {
	format
	Type             string   `json:"_type"`
	Extractor        string   `json:"extractor"`
	ID               string   `json:"id"`
	FormatID         string   `json:"format_id"`
	Duration         float64  `json:"duration"`
	RequestedFormats []format `json:"requested_formats"`
}

func (f format) stream() (Stream, error) {
	if err := spec.CheckMediaURL(f.URL); err != nil {
		return Stream{}, fmt.Errorf("yt-dlp gave a media URL that is not allowed: %w", err)
	}
	hls := strings.HasPrefix(f.Protocol, "m3u8")
	return Stream{URL: f.URL, Headers: f.HTTPHeaders, Protocol: f.Protocol, HLS: hls}, nil
}

// has reports whether a yt-dlp codec field names a codec ("none" means the
// stream is absent; empty means unknown, as for the generic extractor).
func has(codec string) bool { return codec != "none" }

// ParseJSON reads `yt-dlp -J` output for one video.
func ParseJSON(b []byte) (*Resolved, error) {
	var in info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("yt-dlp output: %w", err)
	}
	if in.Type == "playlist" {
		return nil, fmt.Errorf("the URL is a playlist; give the URL of one video")
	}
	r := &Resolved{Extractor: in.Extractor, Duration: in.Duration, Width: in.Width, Height: in.Height, FPS: in.FPS,
		Identity: fmt.Sprintf("yt-dlp=%s:%s:%s", in.Extractor, in.ID, in.FormatID)}
	switch len(in.RequestedFormats) {
	case 0:
		if in.URL == "" {
			return nil, fmt.Errorf("yt-dlp found no media URL")
		}
		s, err := in.format.stream()
		if err != nil {
			return nil, err
		}
		r.Video, r.HasAudio = s, has(in.ACodec)
	case 2:
		v, a := in.RequestedFormats[0], in.RequestedFormats[1]
		if !has(v.VCodec) && has(a.VCodec) {
			v, a = a, v
		}
		vs, err := v.stream()
		if err != nil {
			return nil, err
		}
		as, err := a.stream()
		if err != nil {
			return nil, err
		}
		r.Video, r.Audio, r.HasAudio = vs, &as, true
		r.Width, r.Height, r.FPS = v.Width, v.Height, v.FPS
	default:
		return nil, fmt.Errorf("yt-dlp chose %d formats; expected one, or video and audio", len(in.RequestedFormats))
	}
	return r, nil
}

// FormatSelector asks for the best video no taller than the profile (there
// is no use fetching 4K for a 720p montage) plus the best audio, falling back
// to the best single file.
func FormatSelector(height int) string {
	return fmt.Sprintf("bv*[height<=%d]+ba/b[height<=%d]/bv*+ba/b", height, height)
}

// Args are yt-dlp's arguments: JSON only, no config files, no playlists.
func Args(pageURL string, height int) []string {
	return []string{"-J", "--no-playlist", "--ignore-config", "--no-warnings", "--socket-timeout", "20",
		"-f", FormatSelector(height), "--", pageURL}
}

// YTDLP runs yt-dlp.
type YTDLP struct{ Path string }

// Find locates yt-dlp; ok is false when it is not installed.
func Find() (YTDLP, bool) {
	p, err := exec.LookPath("yt-dlp")
	return YTDLP{Path: p}, err == nil
}

// Version is `yt-dlp --version`.
func (y YTDLP) Version(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, y.Path, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Resolve turns a page into media URLs. It runs just before the cut, because
// the URLs sites hand out expire.
func (y YTDLP) Resolve(ctx context.Context, pageURL string, height int) (*Resolved, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, y.Path, Args(pageURL, height)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 1024 {
			msg = msg[len(msg)-1024:]
		}
		return nil, fmt.Errorf("yt-dlp %s: %v: %s", pageURL, err, msg)
	}
	r, err := ParseJSON(out)
	if err != nil {
		return nil, fmt.Errorf("yt-dlp %s: %w", pageURL, err)
	}
	return r, nil
}
