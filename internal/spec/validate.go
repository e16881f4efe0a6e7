package spec

import (
	"fmt"
	"net/url"
	"slices"
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
	DefaultLoudness   = -14.0 // LUFS: what YouTube, Twitch and Spotify normalise to
	DefaultFade       = 0.5
	MaxFade           = 5.0
	DefaultChunk      = 60.0
	MinChunk          = 10.0
	MaxClipDuration   = 600.0 // intro and outro
	// MaxTotal bounds a whole montage (highlights, intro and outro): six
	// hours is far past any stream recap, and keeps a job's plan (chunks,
	// tasks, the concat's inputs) small enough to replicate in one entry.
	MaxTotal = 6 * 3600.0
)

// Fits of a source into the profile's frame.
const (
	FitLetterbox = "letterbox"
	FitCrop      = "crop"
)

// Source types: how a URL is read.
const (
	SourceFile = "file"
	SourceHLS  = "hls"
	SourcePage = "page"
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
	Fit           string
	// Loudness is the EBU R128 target in LUFS; LoudnessOff keeps source levels.
	Loudness     float64
	LoudnessOff  bool
	Fade         float64 // seconds at each highlight edge; 0 for none
	TitleOverlay bool
	HWAccel      string // auto, none or a family
	// Encoder is the job's one ffmpeg encoder; empty until the coordinator
	// chooses it at submit.
	Encoder string
	// Preset is an x264 preset name (DefaultPreset when not given).
	Preset string
	// Cut is CutExact (kept as "" so that exact renders keep their cache
	// keys), CutKeyframe or CutSmart.
	Cut string `json:",omitempty"`
}

// Cut modes: how a highlight's video is made from its source.
const (
	CutExact    = "exact"
	CutKeyframe = "keyframe"
	CutSmart    = "smart"
)

// CutMode is the profile's cut mode by name (CutExact when unset).
func (p Profile) CutMode() string {
	if p.Cut == "" {
		return CutExact
	}
	return p.Cut
}

// Presets are the x264/x265 preset names, fastest first.
var Presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}

// DefaultPreset is the preset of a profile that names none.
const DefaultPreset = "veryfast"

// Clip is a highlight with its times in seconds.
type Clip struct {
	URL        string
	SourceType string
	Start      float64
	Duration   float64
	Title      string
}

// Resolved is a valid spec in the form the planner and agents use.
type Resolved struct {
	Name         string
	Profile      Profile
	Clips        []Clip
	Intro, Outro *Clip
	ChunkSeconds float64
	Priority     int32
	// Transcribe: every highlight is transcribed; Subtitles is then
	// SubtitlesSidecar, SubtitlesEmbed or SubtitlesBurn.
	Transcribe       bool
	Subtitles        string
	Language, Prompt string
}

// Subtitle modes.
const (
	SubtitlesSidecar = "sidecar"
	SubtitlesEmbed   = "embed"
	SubtitlesBurn    = "burn"
	SubtitlesNone    = "none"
)

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
	for _, x := range []struct {
		name string
		h    *montagev1.Highlight
		dst  **Clip
	}{{"intro", s.GetIntro(), &r.Intro}, {"outro", s.GetOutro(), &r.Outro}} {
		if x.h == nil {
			continue
		}
		h := proto.Clone(x.h).(*montagev1.Highlight)
		if strings.TrimSpace(h.GetAt()) == "" {
			h.At = "0"
		}
		c, err := resolveHighlight(h)
		if err != nil {
			fe := err.(*FieldError)
			return nil, fieldErr(x.name+"."+fe.Field, "%s", fe.Reason)
		}
		if c.Title == "" {
			c.Title = strings.ToUpper(x.name[:1]) + x.name[1:]
		}
		*x.dst = &c
	}
	r.ChunkSeconds = DefaultChunk
	if v := s.GetChunkSeconds(); v != 0 {
		r.ChunkSeconds = v
	}
	if !(r.ChunkSeconds >= MinChunk && r.ChunkSeconds <= MaxDuration) {
		return nil, fieldErr("chunk_seconds", "must be between %g and %g, got %g", MinChunk, MaxDuration, r.ChunkSeconds)
	}
	if err := r.transcription(s); err != nil {
		return nil, err
	}
	if r.Profile.Cut == CutKeyframe && r.Subtitles == SubtitlesBurn {
		return nil, fieldErr("subtitles", "burn draws into the picture, which cut: keyframe copies untouched; use cut: smart or exact, or subtitles: sidecar")
	}
	if total := r.Total(); total > MaxTotal {
		return nil, fieldErr("highlights", "add up to a montage of %s (intro and outro included); the limit is %s",
			FormatTimestamp(total), FormatTimestamp(MaxTotal))
	}
	return r, nil
}

// transcription checks transcribe, subtitles, language and prompt.
func (r *Resolved) transcription(s *montagev1.JobSpec) error {
	r.Transcribe, r.Language, r.Prompt = s.GetTranscribe(), strings.TrimSpace(s.GetLanguage()), strings.TrimSpace(s.GetPrompt())
	r.Subtitles = strings.ToLower(strings.TrimSpace(s.GetSubtitles()))
	switch r.Subtitles {
	case "":
		if r.Transcribe {
			r.Subtitles = SubtitlesSidecar
		}
	case SubtitlesSidecar, SubtitlesEmbed, SubtitlesBurn:
		if !r.Transcribe {
			return fieldErr("subtitles", "%q needs transcribe: true", r.Subtitles)
		}
	case SubtitlesNone:
	default:
		return fieldErr("subtitles", "must be sidecar, embed, burn or none, got %q", s.GetSubtitles())
	}
	if r.Language != "" && (len(r.Language) != 2 || strings.ToLower(r.Language) != r.Language || !isLetters(r.Language)) {
		return fieldErr("language", "must be a two-letter ISO-639-1 code like en or de, got %q", s.GetLanguage())
	}
	if !utf8.ValidString(r.Prompt) || len(r.Prompt) > 1000 {
		return fieldErr("prompt", "must be valid UTF-8 of at most 1000 bytes")
	}
	if (r.Language != "" || r.Prompt != "") && !r.Transcribe {
		return fieldErr("transcribe", "must be true for language or prompt to mean anything")
	}
	return nil
}

func isLetters(s string) bool {
	for _, c := range s {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// Total is the montage's length as planned: every clip, intro and outro.
func (r *Resolved) Total() float64 {
	var t float64
	for _, c := range r.Clips {
		t += c.Duration
	}
	for _, c := range []*Clip{r.Intro, r.Outro} {
		if c != nil {
			t += c.Duration
		}
	}
	return t
}

// SourceTypeOf decides how a URL is read when the spec does not say: s3://
// objects and unknown paths are files, .m3u8 playlists are HLS, and the
// video sites yt-dlp knows are pages.
func SourceTypeOf(raw, given string) (string, error) {
	switch g := strings.ToLower(strings.TrimSpace(given)); g {
	case SourceFile, SourceHLS, SourcePage:
		if g != SourceFile && strings.HasPrefix(strings.ToLower(raw), "s3:") {
			return "", fmt.Errorf("%q cannot be used with an s3:// URL; s3 objects are files", g)
		}
		return g, nil
	case "", "auto":
	default:
		return "", fmt.Errorf("%q is not one of auto, file, hls, page", given)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("is not a valid URL: %v", err)
	}
	if strings.EqualFold(u.Scheme, "s3") {
		return SourceFile, nil
	}
	path := strings.ToLower(u.Path)
	if strings.HasSuffix(path, ".m3u8") {
		return SourceHLS, nil
	}
	host := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(u.Hostname()), "www."), "m.")
	for _, site := range pageSites {
		if host == site || strings.HasSuffix(host, "."+site) {
			return SourcePage, nil
		}
	}
	if strings.HasSuffix(path, ".html") || strings.HasSuffix(path, ".htm") {
		return SourcePage, nil
	}
	return SourceFile, nil
}

// pageSites are hosts whose URLs are web pages, not media: yt-dlp resolves them.
var pageSites = []string{"youtube.com", "youtu.be", "twitch.tv", "kick.com", "vimeo.com", "dailymotion.com", "streamable.com"}

func resolveHighlight(h *montagev1.Highlight) (Clip, error) {
	if h == nil {
		return Clip{}, fieldErr("url", "is missing")
	}
	c := Clip{URL: strings.TrimSpace(h.GetUrl()), Title: strings.TrimSpace(h.GetTitle())}
	if err := CheckSourceURL(c.URL); err != nil {
		return Clip{}, fieldErr("url", "%s", err)
	}
	st, err := SourceTypeOf(c.URL, h.GetSourceType())
	if err != nil {
		return Clip{}, fieldErr("source_type", "%s", err)
	}
	c.SourceType = st
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

// CheckSourceURL accepts only absolute http(s) URLs with a host and
// s3://bucket/key objects. Other schemes (file, data, concat, …) would let a
// job read the agent's own disk.
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
	case "s3":
		if _, _, err := ParseS3URL(raw); err != nil {
			return err
		}
		return nil
	case "":
		return fmt.Errorf("%q has no scheme; use http://, https:// or s3://", raw)
	default:
		return fmt.Errorf("scheme %q is not supported; use http://, https:// or s3://", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

// CheckMediaURL is what an agent accepts as an input to ffmpeg: http(s) only
// (s3:// arrives presigned; a page's media URLs come from yt-dlp).
func CheckMediaURL(raw string) error {
	if err := CheckSourceURL(raw); err != nil {
		return err
	}
	if u, _ := url.Parse(raw); strings.EqualFold(u.Scheme, "s3") {
		return fmt.Errorf("s3:// URL reached an agent unsigned")
	}
	return nil
}

// ParseS3URL splits s3://bucket/key.
func ParseS3URL(raw string) (bucket, key string, err error) {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "s3") {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URL", raw)
	}
	key = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || key == "" || u.RawQuery != "" {
		return "", "", fmt.Errorf("%q must be s3://bucket/key", raw)
	}
	return u.Host, key, nil
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
	switch out.VideoCodec {
	case "h264", "hevc", "av1":
	case "h265", "x265":
		out.VideoCodec = "hevc"
	default:
		return Profile{}, fieldErr("profile.video_codec", "%q is not supported; use h264, hevc or av1", out.VideoCodec)
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
	switch f := strings.ToLower(strings.TrimSpace(p.GetFit())); f {
	case "", FitLetterbox, "pad", "fit":
		out.Fit = FitLetterbox
	case FitCrop, "fill":
		out.Fit = FitCrop
	default:
		return Profile{}, fieldErr("profile.fit", "%q is not letterbox or crop", p.GetFit())
	}
	switch l := strings.ToLower(strings.TrimSpace(p.GetLoudness())); l {
	case "":
		out.Loudness = DefaultLoudness
	case "off", "none":
		out.LoudnessOff = true
	default:
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(l, "lufs")), " "), 64)
		if err != nil || !(v >= -70 && v <= -5) {
			return Profile{}, fieldErr("profile.loudness", "%q is not a target between -70 and -5 LUFS or \"off\"", p.GetLoudness())
		}
		out.Loudness = v
	}
	out.Fade = DefaultFade
	if f := strings.TrimSpace(p.GetFade()); f != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(f, "s"), 64)
		if err != nil || !(v >= 0 && v <= MaxFade) {
			return Profile{}, fieldErr("profile.fade", "%q is not a number of seconds between 0 and %g", f, MaxFade)
		}
		out.Fade = v
	}
	out.TitleOverlay = p.GetTitleOverlay()
	out.HWAccel = strings.ToLower(strings.TrimSpace(p.GetHwaccel()))
	if out.HWAccel == "" {
		out.HWAccel = HWAuto
	}
	if out.HWAccel != HWAuto && out.HWAccel != HWNone && !isFamily(out.HWAccel) {
		return Profile{}, fieldErr("profile.hwaccel", "%q is not one of auto, none, %s", p.GetHwaccel(), strings.Join(HWFamilies, ", "))
	}
	if e := p.GetEncoder(); e != "" {
		c, _, ok := ParseEncoder(e)
		if !ok {
			return Profile{}, fieldErr("profile.encoder", "%q is not an encoder this farm knows", e)
		}
		if c != out.VideoCodec {
			return Profile{}, fieldErr("profile.encoder", "%q does not encode %s", e, out.VideoCodec)
		}
		out.Encoder = e
	}
	out.Preset = DefaultPreset
	if pr := strings.ToLower(strings.TrimSpace(p.GetPreset())); pr != "" {
		if !slices.Contains(Presets, pr) {
			return Profile{}, fieldErr("profile.preset", "%q is not one of %s", p.GetPreset(), strings.Join(Presets, ", "))
		}
		out.Preset = pr
	}
	if err := out.resolveCut(p); err != nil {
		return Profile{}, err
	}
	return out, nil
}

// resolveCut checks profile.cut and what copying the video rules out: the
// copied GOPs are the source's H.264, so the montage must be H.264 made by
// x264 (its edges are re-encoded to match the source, which hardware
// encoders cannot be told to do), and a keyframe cut, which encodes no
// video at all, can neither fade nor draw a title.
func (out *Profile) resolveCut(p *montagev1.RenderProfile) error {
	c := strings.ToLower(strings.TrimSpace(p.GetCut()))
	switch c {
	case "", CutExact:
		out.Cut = ""
		return nil
	case CutKeyframe, CutSmart:
		out.Cut = c
	default:
		return fieldErr("profile.cut", "%q is not exact, keyframe or smart", p.GetCut())
	}
	if out.VideoCodec != "h264" {
		return fieldErr("profile.cut", "%s copies H.264 video from the sources; video_codec must be h264, not %s", c, out.VideoCodec)
	}
	switch out.HWAccel {
	case HWAuto:
		out.HWAccel = HWNone
	case HWNone:
	default:
		return fieldErr("profile.hwaccel", "cut: %s encodes the cut's edges with x264 to match the source; use hwaccel auto or none, not %s", c, out.HWAccel)
	}
	if out.Encoder != "" && out.Encoder != "libx264" {
		return fieldErr("profile.encoder", "cut: %s encodes with libx264, not %s", c, out.Encoder)
	}
	if c != CutKeyframe {
		return nil
	}
	if strings.TrimSpace(p.GetFade()) == "" {
		out.Fade = 0
	} else if out.Fade > 0 {
		return fieldErr("profile.fade", "cut: keyframe copies the video untouched and cannot fade it; set fade: 0 or use cut: smart")
	}
	if out.TitleOverlay {
		return fieldErr("profile.title_overlay", "cut: keyframe copies the video untouched and cannot draw a title; use cut: smart")
	}
	return nil
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
	loud := strconv.FormatFloat(p.Loudness, 'f', -1, 64)
	if p.LoudnessOff {
		loud = "off"
	}
	return &montagev1.RenderProfile{
		Resolution:   p.Size(),
		Fps:          p.FPS,
		VideoCodec:   p.VideoCodec,
		Quality:      int32(p.Quality),
		AudioBitrate: fmt.Sprintf("%dk", p.AudioBitrate/1000),
		Fit:          p.Fit,
		Loudness:     loud,
		Fade:         strconv.FormatFloat(p.Fade, 'f', -1, 64),
		TitleOverlay: p.TitleOverlay,
		Hwaccel:      p.HWAccel,
		Encoder:      p.Encoder,
		Preset:       p.Preset,
		Cut:          p.Cut,
	}
}
