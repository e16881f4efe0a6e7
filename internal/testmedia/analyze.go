package testmedia

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Stream facts of a file, from ffprobe.
type Stream struct {
	Type      string  // "video" or "audio"
	FPS       float64 // video
	StartTime float64
}

func probeStreams(ctx context.Context, path string) (video, audio *Stream, err error) {
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_entries", "stream=codec_type,avg_frame_rate,start_time",
		"-of", "json", path).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	var p struct {
		Streams []struct {
			CodecType    string `json:"codec_type"`
			AvgFrameRate string `json:"avg_frame_rate"`
			StartTime    string `json:"start_time"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, nil, err
	}
	for _, s := range p.Streams {
		st, _ := strconv.ParseFloat(s.StartTime, 64)
		switch s.CodecType {
		case "video":
			if video == nil {
				n, d, _ := strings.Cut(s.AvgFrameRate, "/")
				num, _ := strconv.ParseFloat(n, 64)
				den, _ := strconv.ParseFloat(d, 64)
				fps := 0.0
				if den > 0 {
					fps = num / den
				}
				video = &Stream{Type: "video", FPS: fps, StartTime: st}
			}
		case "audio":
			if audio == nil {
				audio = &Stream{Type: "audio", StartTime: st}
			}
		}
	}
	if video == nil {
		return nil, nil, fmt.Errorf("%s has no video", path)
	}
	return video, audio, nil
}

// Markers finds the sync markers of a file made from Sync sources: the
// times (seconds, presentation time) at which a flash starts (a frame turns
// bright after a dark one) and a beep starts (the audio rises above -34 dBFS
// after at least 300 ms below). It also returns the video frame rate.
func Markers(ctx context.Context, path string) (flashes, beeps []float64, fps float64, err error) {
	v, a, err := probeStreams(ctx, path)
	if err != nil {
		return nil, nil, 0, err
	}
	fps = v.FPS
	raw, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0",
		"-vf", "scale=8:8,format=gray", "-fps_mode", "passthrough", "-f", "rawvideo", "-").Output()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("decode video of %s: %w", path, err)
	}
	bright := false
	for i := 0; i+64 <= len(raw); i += 64 {
		// The centre 2x2 of the 8x8 thumbnail: a portrait source is
		// pillarboxed, so only the middle of the frame flashes.
		c := raw[i:]
		sum := int(c[27]) + int(c[28]) + int(c[35]) + int(c[36])
		now := sum/4 > 100 // white is 235 at full strength; a fade still clears 100 early on
		if now && !bright {
			flashes = append(flashes, v.StartTime+float64(i/64)/fps)
		}
		bright = now
	}
	if a == nil {
		return flashes, nil, fps, nil
	}
	pcm, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0",
		"-ac", "1", "-ar", "48000", "-f", "f32le", "-").Output()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("decode audio of %s: %w", path, err)
	}
	const rate, threshold = 48000.0, 0.02
	quiet := int(0.3 * rate)
	for i := 0; i+4 <= len(pcm); i += 4 {
		x := math.Abs(float64(math.Float32frombits(binary.LittleEndian.Uint32(pcm[i:]))))
		if x > threshold {
			if quiet >= int(0.3*rate) {
				beeps = append(beeps, a.StartTime+float64(i/4)/rate)
			}
			quiet = 0
		} else {
			quiet++
		}
	}
	return flashes, beeps, fps, nil
}

var integrated = regexp.MustCompile(`(?s)Integrated loudness:\s*I:\s*(-?[0-9.]+|-inf) LUFS`)

// Loudness measures the integrated loudness (EBU R128, ffmpeg's ebur128)
// of duration seconds of a file from start.
func Loudness(ctx context.Context, path string, start, duration float64) (float64, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-ss", ff(start), "-t", ff(duration), "-i", path,
		"-map", "0:a:0", "-af", "ebur128", "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("ebur128 %s: %v: %s", path, err, stderr.String())
	}
	m := integrated.FindStringSubmatch(stderr.String())
	if m == nil {
		return 0, fmt.Errorf("ebur128 printed no integrated loudness")
	}
	if m[1] == "-inf" {
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(m[1], 64)
}

// Chapter is an embedded chapter.
type Chapter struct {
	Title      string
	Start, End float64
}

// Chapters reads the chapters embedded in a file.
func Chapters(ctx context.Context, path string) ([]Chapter, error) {
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_chapters", "-of", "json", path).Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe chapters %s: %w", path, err)
	}
	var p struct {
		Chapters []struct {
			StartTime string            `json:"start_time"`
			EndTime   string            `json:"end_time"`
			Tags      map[string]string `json:"tags"`
		} `json:"chapters"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, err
	}
	var cs []Chapter
	for _, c := range p.Chapters {
		s, _ := strconv.ParseFloat(c.StartTime, 64)
		e, _ := strconv.ParseFloat(c.EndTime, 64)
		cs = append(cs, Chapter{Title: c.Tags["title"], Start: s, End: e})
	}
	return cs, nil
}

// TopLevelAtoms lists an MP4's top-level boxes in file order ("ftyp",
// "moov", "mdat", ...). A file plays while it downloads when moov comes
// before mdat.
func TopLevelAtoms(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	var off int64
	hdr := make([]byte, 16)
	for {
		if _, err := f.ReadAt(hdr[:8], off); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		out = append(out, string(hdr[4:8]))
		switch size {
		case 0:
			return out, nil
		case 1:
			if _, err := f.ReadAt(hdr[8:16], off+8); err != nil {
				return nil, err
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if size < 8 {
			return nil, fmt.Errorf("bad box size %d at %d", size, off)
		}
		off += size
	}
}

// BrightPixels decodes the frame of path shown at the given second and
// counts, in its bottom third, the pixels near white (luma above 200): the
// mark of burned-in subtitles on a dark, flat test picture.
func BrightPixels(ctx context.Context, path string, at float64) (int, error) {
	raw, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-ss", ff(at), "-i", path, "-map", "0:v:0",
		"-frames:v", "1", "-vf", "crop=iw:ih/3:0:ih*2/3,format=gray", "-f", "rawvideo", "-").Output()
	if err != nil {
		return 0, fmt.Errorf("frame at %ss of %s: %w", ff(at), path, err)
	}
	if len(raw) == 0 {
		return 0, fmt.Errorf("no frame at %ss of %s", ff(at), path)
	}
	n := 0
	for _, y := range raw {
		if y > 200 {
			n++
		}
	}
	return n, nil
}

// DecodeErrors decodes a whole file with -xerror, which stops at the first
// decoding error: nil when every frame and sample decodes cleanly (and
// ffmpeg has nothing to say), else what it said.
func DecodeErrors(ctx context.Context, path string) error {
	out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		return fmt.Errorf("decode %s: %v: %s", path, err, out)
	}
	return nil
}
