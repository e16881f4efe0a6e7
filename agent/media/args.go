// Package media builds and runs the agent's ffmpeg and ffprobe commands. The
// argument builders are pure so that tests can pin them (golden files); the
// runners are thin wrappers around exec.
package media

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Profile is the encoding every segment of one job shares.
type Profile struct {
	Width, Height int
	FPS           float64
	Quality       int    // x264 CRF
	AudioBitrate  string // e.g. "160k"
}

// GOP returns the keyframe interval: two seconds of frames, fixed, so every
// segment has the same structure.
func (p Profile) GOP() int {
	g := int(math.Round(2 * p.FPS))
	if g < 1 {
		g = 1
	}
	return g
}

// FPSRational writes a frame rate as ffmpeg reads it exactly: NTSC rates
// (29.97, 59.94, 23.976) as N*1000/1001, others as a reduced fraction.
func FPSRational(fps float64) string {
	for _, n := range []float64{24, 30, 48, 60, 120} {
		if math.Abs(fps-n*1000/1001) < 0.005 {
			return fmt.Sprintf("%d/1001", int(n*1000))
		}
	}
	if fps == math.Trunc(fps) {
		return strconv.Itoa(int(fps))
	}
	return fmt.Sprintf("%d/1000", int(math.Round(fps*1000)))
}

// SourceKind says how a source is demuxed and which protocols it may use.
type SourceKind int

const (
	// SourceFile is a plain media file over HTTP(S), read with range requests.
	SourceFile SourceKind = iota
	// SourceHLS is an HLS playlist (Twitch VODs and most live archives).
	SourceHLS
)

// KindOf tells a source's kind from its URL path.
func KindOf(raw string) SourceKind {
	u, err := url.Parse(raw)
	if err == nil && strings.HasSuffix(strings.ToLower(u.Path), ".m3u8") {
		return SourceHLS
	}
	return SourceFile
}

// InputOptions are the options placed before an untrusted source's -i: a
// protocol whitelist with only what the kind needs (never file, concat,
// subfile, data or pipe, which would let a playlist read local files) and a
// forced demuxer where the kind is known.
func InputOptions(kind SourceKind) []string {
	switch kind {
	case SourceHLS:
		return []string{"-protocol_whitelist", "http,https,tcp,tls,crypto", "-f", "hls"}
	default:
		return []string{"-protocol_whitelist", "http,https,tcp,tls"}
	}
}

// Render describes one cut.
type Render struct {
	Source   string
	Kind     SourceKind
	Start    float64 // seconds into the source
	Duration float64 // seconds to keep
	HasAudio bool    // false: generated silence is used
	Profile  Profile
	Output   string
}

func secs(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// VideoFilter normalises any source to the profile: constant frame rate,
// scaled to fit and padded (letterbox/pillarbox) to the exact size, square
// pixels, yuv420p.
func VideoFilter(p Profile) string {
	return fmt.Sprintf("fps=%s,scale=%d:%d:force_original_aspect_ratio=decrease:force_divisible_by=2,"+
		"pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p",
		FPSRational(p.FPS), p.Width, p.Height, p.Width, p.Height)
}

// AudioFilter brings any audio to 48 kHz stereo and pads it with silence so
// that it never ends before the video (-shortest then ends both together).
const AudioFilter = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,apad"

// RenderArgs builds the ffmpeg command line (without the program name) for
// one segment. -ss sits before -i so ffmpeg seeks by range request instead of
// reading the source from its start; -t sits on the output.
func RenderArgs(r Render) []string {
	p := r.Profile
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y"}
	args = append(args, InputOptions(r.Kind)...)
	args = append(args, "-ss", secs(r.Start), "-i", r.Source)
	audio := "0:a:0"
	if !r.HasAudio {
		args = append(args, "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo")
		audio = "1:a:0"
	}
	args = append(args,
		"-map", "0:v:0", "-map", audio,
		"-t", secs(r.Duration),
		"-vf", VideoFilter(p),
		"-af", AudioFilter,
		"-shortest",
		"-fps_mode", "cfr",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", strconv.Itoa(p.Quality),
		"-profile:v", "high", "-pix_fmt", "yuv420p",
		"-g", strconv.Itoa(p.GOP()), "-keyint_min", strconv.Itoa(p.GOP()), "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", p.AudioBitrate, "-ar", "48000", "-ac", "2",
		"-video_track_timescale", "90000",
		"-map_metadata", "-1", "-map_chapters", "-1",
		"-movflags", "+faststart",
		"-progress", "pipe:1", "-nostats",
		"-f", "mp4", r.Output,
	)
	return args
}

// ConcatArgs joins segments listed in a concat-demuxer file: video copied,
// audio re-encoded once (which removes the priming gaps AAC leaves at every
// join), chapters taken from an FFMETADATA file, moov atom first. The list
// and segments are local files this agent downloaded, so only file is allowed.
func ConcatArgs(listPath, metadataPath, audioBitrate, output string) []string {
	return []string{
		"-nostdin", "-hide_banner", "-v", "error", "-y",
		"-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", listPath,
		"-f", "ffmetadata", "-protocol_whitelist", "file", "-i", metadataPath,
		"-map", "0:v:0", "-map", "0:a:0",
		"-map_metadata", "1", "-map_chapters", "1",
		"-c:v", "copy",
		"-c:a", "aac", "-b:a", audioBitrate, "-ar", "48000", "-ac", "2",
		"-movflags", "+faststart",
		"-progress", "pipe:1", "-nostats",
		"-f", "mp4", output,
	}
}

// ProbeArgs asks ffprobe for streams and format as JSON, with the same
// protocol limits as a render of that source.
func ProbeArgs(source string, kind SourceKind) []string {
	args := []string{"-hide_banner", "-v", "error"}
	args = append(args, InputOptions(kind)...)
	return append(args, "-show_entries", "stream=index,codec_type,codec_name,width,height,r_frame_rate,sample_rate,channels:format=duration,format_name",
		"-of", "json", source)
}

// ConcatList writes a concat demuxer list for local files.
func ConcatList(paths []string) string {
	var b strings.Builder
	b.WriteString("ffconcat version 1.0\n")
	for _, p := range paths {
		b.WriteString("file '" + strings.ReplaceAll(p, "'", `'\''`) + "'\n")
	}
	return b.String()
}

// Chapter is one titled span of the montage, in seconds.
type Chapter struct {
	Title      string
	Start, End float64
}

// escapeMeta escapes FFMETADATA special characters.
func escapeMeta(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "=", `\=`, ";", `\;`, "#", `\#`, "\n", `\`+"\n")
	return r.Replace(s)
}

// FFMetadata renders chapters (and a title) as an FFMETADATA file.
func FFMetadata(title string, chapters []Chapter) string {
	var b strings.Builder
	b.WriteString(";FFMETADATA1\n")
	if title != "" {
		b.WriteString("title=" + escapeMeta(title) + "\n")
	}
	for _, c := range chapters {
		fmt.Fprintf(&b, "\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=%d\nEND=%d\ntitle=%s\n",
			int64(math.Round(c.Start*1000)), int64(math.Round(c.End*1000)), escapeMeta(c.Title))
	}
	return b.String()
}
