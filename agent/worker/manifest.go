package worker

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/stream-montages/montage/agent/media"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// Manifest describes a finished montage: what went in, where each piece sits
// in the montage and how it was encoded. It is written beside the montage.
type Manifest struct {
	Job      string            `json:"job"`
	Duration float64           `json:"duration_seconds"`
	Encoder  string            `json:"encoder"`
	Profile  ManifestProfile   `json:"profile"`
	Parts    []ManifestPart    `json:"parts"`
	Chapters []ManifestChapter `json:"chapters"`
}

// ManifestProfile is the encoding every segment shares.
type ManifestProfile struct {
	Resolution   string  `json:"resolution"`
	FPS          float64 `json:"fps"`
	VideoCodec   string  `json:"video_codec"`
	Fit          string  `json:"fit"`
	Loudness     string  `json:"loudness"`
	AudioBitrate string  `json:"audio_bitrate"`
	Cut          string  `json:"cut,omitempty"`
}

// ManifestPart is one segment: an intro, outro or (a chunk of) a highlight.
type ManifestPart struct {
	Role           string  `json:"role"`
	HighlightIndex int     `json:"highlight_index"`
	Title          string  `json:"title,omitempty"`
	Chunk          int     `json:"chunk"`
	Chunks         int     `json:"chunks"`
	SourceURL      string  `json:"source_url"`
	SourceStart    float64 `json:"source_start_seconds"`
	Offset         float64 `json:"offset_seconds"`
	Duration       float64 `json:"duration_seconds"`
	Cached         bool    `json:"cached"`
	// Cut is how the part's video was made: "encode", "copy" (keyframe
	// cut) or "smart"; CutNote why a smart cut re-encoded it whole.
	Cut           string                 `json:"cut,omitempty"`
	CutNote       string                 `json:"cut_note,omitempty"`
	CopiedSeconds float64                `json:"copied_seconds,omitempty"`
	Source        *montagev1.SourceFacts `json:"source,omitempty"`
}

// ManifestChapter is a chapter as embedded in the MP4.
type ManifestChapter struct {
	Title string  `json:"title"`
	Start float64 `json:"start_seconds"`
	End   float64 `json:"end_seconds"`
}

func manifest(jobID string, p *montagev1.RenderProfile, prof media.Profile, segs []*montagev1.ConcatSegment, chapters []media.Chapter, offsets []float64, total float64) ([]byte, error) {
	m := Manifest{
		Job: jobID, Duration: total, Encoder: prof.Encoder,
		Profile: ManifestProfile{Resolution: p.GetResolution(), FPS: p.GetFps(), VideoCodec: p.GetVideoCodec(),
			Fit: p.GetFit(), Loudness: p.GetLoudness(), AudioBitrate: p.GetAudioBitrate(), Cut: p.GetCut()},
	}
	if m.Encoder == "" {
		m.Encoder = "libx264"
	}
	for i, s := range segs {
		start := s.GetSourceStartSeconds()
		if s.GetChunk() > 0 && i > 0 {
			// Chunk edges moved to keyframes on the agents: a chunk starts
			// where the one before it ended.
			prev := m.Parts[i-1]
			start = prev.SourceStart + prev.Duration
		}
		part := ManifestPart{
			Role: s.GetRole(), HighlightIndex: int(s.GetHighlightIndex()), Title: s.GetTitle(),
			Chunk: int(s.GetChunk()), Chunks: int(max(1, s.GetChunks())),
			SourceURL: redact(s.GetSourceUrl()), SourceStart: start,
			Offset: offsets[i], Duration: s.GetDurationSeconds(), Cached: s.GetCached(),
		}
		if f := s.GetSource(); f != nil && (f.GetVideoCodec() != "" || f.GetExtractor() != "" || f.GetWidth() > 0) {
			part.Source = f
		}
		if f := s.GetSource(); f.GetCut() != "" {
			// Where the copying cut really began (a keyframe cut snaps to
			// the keyframe at or before the asked time).
			part.SourceStart, part.Cut, part.CutNote, part.CopiedSeconds = f.GetCutStartSeconds(), f.GetCut(), f.GetCutNote(), f.GetCopiedSeconds()
		}
		m.Parts = append(m.Parts, part)
	}
	for _, c := range chapters {
		m.Chapters = append(m.Chapters, ManifestChapter{Title: c.Title, Start: c.Start, End: c.End})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// redact drops credentials written into a URL's user part.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
