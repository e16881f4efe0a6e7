package spec

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Limits of a job spec. They keep one job's state and plan bounded.
const (
	MaxSpecBytes      = 1 << 20
	MaxHighlights     = 500
	MinDuration       = 1.0
	MaxDuration       = 600.0
	DefaultDuration   = 60.0
	MaxURLLength      = 4096
	MaxTitleLength    = 200
	MaxNameLength     = 200
	DefaultResolution = "1280x720"
	DefaultFPS        = 30.0
	DefaultCodec      = "h264"
	DefaultQuality    = 23
	DefaultAudioRate  = "160k"
)

// FieldError names the field of the spec that is wrong and why, so a person
// can fix it: "highlights[3].duration: must be between 1 and 600 seconds".
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Profile is a render profile with defaults applied and numbers parsed.
type Profile struct {
	Width, Height int
	FPS           float64
	VideoCodec    string
	Quality       int
	AudioBitrate  int // bits per second
}

// Clip is a highlight with its times in seconds.
type Clip struct {
	URL      string
	Start    float64
	Duration float64
	Title    string
}

// Resolved is a valid spec in the form the planner and agents use.
type Resolved struct {
	Name     string
	Profile  Profile
	Clips    []Clip
	Priority int32
}

// Validate checks a spec against every rule and returns it resolved. The
// first broken rule is returned as a *FieldError.
func Validate(s *montagev1.JobSpec) (*Resolved, error) {
	if s == nil {
		return nil, fieldErr("spec", "is missing")
	}
	if n := proto.Size(s); n > MaxSpecBytes {
		return nil, fieldErr("spec", "is %d bytes; the limit is %d (1 MiB)", n, MaxSpecBytes)
	}
	r := &Resolved{Name: strings.TrimSpace(s.GetName()), Priority: s.GetPriority()}
	if !utf8.ValidString(r.Name) || len(r.Name) > MaxNameLength {
		return nil, fieldErr("name", "must be valid UTF-8 of at most %d bytes", MaxNameLength)
	}
	if r.Priority < -100 || r.Priority > 100 {
		return nil, fieldErr("priority", "must be between -100 and 100")
	}
	p, err := ResolveProfile(s.GetProfile())
	if err != nil {
		return nil, err
	}
	r.Profile = p
	hs := s.GetHighlights()
	if len(hs) == 0 {
		return nil, fieldErr("highlights", "must list at least one highlight")
	}
	if len(hs) > MaxHighlights {
		return nil, fieldErr("highlights", "has %d entries; the limit is %d", len(hs), MaxHighlights)
	}
	for i, h := range hs {
		c, err := resolveHighlight(h)
		if err != nil {
			fe := err.(*FieldError)
			return nil, fieldErr(fmt.Sprintf("highlights[%d].%s", i, fe.Field), "%s", fe.Reason)
		}
		r.Clips = append(r.Clips, c)
	}
	return r, nil
}

func resolveHighlight(h *montagev1.Highlight) (Clip, error) {
	if h == nil {
		return Clip{}, fieldErr("url", "is missing")
	}
	c := Clip{URL: strings.TrimSpace(h.GetUrl()), Title: strings.TrimSpace(h.GetTitle())}
	if err := CheckSourceURL(c.URL); err != nil {
		return Clip{}, fieldErr("url", "%s", err)
	}
	if strings.TrimSpace(h.GetAt()) == "" {
		return Clip{}, fieldErr("at", "is required (the start of the highlight, like 1:05:45)")
	}
	at, err := ParseTimestamp(h.GetAt())
	if err != nil {
		return Clip{}, fieldErr("at", "%s", err)
	}
	c.Start = at
	c.Duration = DefaultDuration
	if d := strings.TrimSpace(h.GetDuration()); d != "" {
		if strings.HasPrefix(d, "-") {
			return Clip{}, fieldErr("duration", "must be between %g and %g seconds, not negative", MinDuration, MaxDuration)
		}
		v, err := ParseTimestamp(d)
		if err != nil {
			return Clip{}, fieldErr("duration", "%s", err)
		}
		c.Duration = v
	}
	if c.Duration < MinDuration || c.Duration > MaxDuration {
		return Clip{}, fieldErr("duration", "must be between %g and %g seconds, got %g", MinDuration, MaxDuration, c.Duration)
	}
	if !utf8.ValidString(c.Title) || len(c.Title) > MaxTitleLength {
		return Clip{}, fieldErr("title", "must be valid UTF-8 of at most %d bytes", MaxTitleLength)
	}
	return c, nil
}

// CheckSourceURL accepts only absolute http(s) URLs with a host. Other schemes
// (file, data, concat, …) would let a job read the agent's own disk.
func CheckSourceURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is required")
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("is longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a valid URL: %v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return fmt.Errorf("%q has no scheme; use http:// or https://", raw)
	default:
		return fmt.Errorf("scheme %q is not supported; use http:// or https://", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// ResolveProfile applies defaults and checks ranges.
func ResolveProfile(p *montagev1.RenderProfile) (Profile, error) {
	out := Profile{FPS: DefaultFPS, VideoCodec: DefaultCodec, Quality: DefaultQuality}
	res := DefaultResolution
	if p.GetResolution() != "" {
		res = p.GetResolution()
	}
	w, h, err := parseResolution(res)
	if err != nil {
		return Profile{}, fieldErr("profile.resolution", "%s", err)
	}
	out.Width, out.Height = w, h
	if p.GetFps() != 0 {
		out.FPS = p.GetFps()
	}
	if !(out.FPS >= 1 && out.FPS <= 120) {
		return Profile{}, fieldErr("profile.fps", "must be between 1 and 120, got %g", out.FPS)
	}
	if c := strings.ToLower(p.GetVideoCodec()); c != "" {
		out.VideoCodec = c
	}
	if out.VideoCodec != "h264" {
		return Profile{}, fieldErr("profile.video_codec", "%q is not supported; use h264", out.VideoCodec)
	}
	if p.GetQuality() != 0 {
		out.Quality = int(p.GetQuality())
	}
	if out.Quality < 0 || out.Quality > 51 {
		return Profile{}, fieldErr("profile.quality", "must be between 0 and 51 (x264 CRF), got %d", out.Quality)
	}
	ab := DefaultAudioRate
	if p.GetAudioBitrate() != "" {
		ab = p.GetAudioBitrate()
	}
	bps, err := parseBitrate(ab)
	if err != nil {
		return Profile{}, fieldErr("profile.audio_bitrate", "%s", err)
	}
	out.AudioBitrate = bps
	return out, nil
}

func parseResolution(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	if !ok || !isDigits(ws) || !isDigits(hs) || len(ws) > 5 || len(hs) > 5 {
		return 0, 0, fmt.Errorf("%q is not WIDTHxHEIGHT like 1280x720", s)
	}
	w, _ := strconv.Atoi(ws)
	h, _ := strconv.Atoi(hs)
	if w < 16 || h < 16 || w > 7680 || h > 4320 {
		return 0, 0, fmt.Errorf("%dx%d is outside 16x16..7680x4320", w, h)
	}
	if w%2 != 0 || h%2 != 0 {
		return 0, 0, fmt.Errorf("%dx%d must have even width and height (yuv420p)", w, h)
	}
	return w, h, nil
}

func parseBitrate(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1
	if strings.HasSuffix(t, "k") {
		mult, t = 1000, strings.TrimSuffix(t, "k")
	}
	if !isDigits(t) || len(t) > 7 {
		return 0, fmt.Errorf("%q is not a bitrate like 160k", s)
	}
	v, _ := strconv.Atoi(t)
	v *= mult
	if v < 32000 || v > 512000 {
		return 0, fmt.Errorf("%q is outside 32k..512k", s)
	}
	return v, nil
}

// Size returns the "WxH" string of a profile.
func (p Profile) Size() string { return fmt.Sprintf("%dx%d", p.Width, p.Height) }

// ToProto renders a resolved profile back into the wire form agents receive,
// so every agent gets the same explicit numbers rather than defaults.
func (p Profile) ToProto() *montagev1.RenderProfile {
	return &montagev1.RenderProfile{
		Resolution:   p.Size(),
		Fps:          p.FPS,
		VideoCodec:   p.VideoCodec,
		Quality:      int32(p.Quality),
		AudioBitrate: fmt.Sprintf("%dk", p.AudioBitrate/1000),
	}
}
