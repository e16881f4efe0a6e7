package media

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// KeyframeWindow is how far after a nominal chunk edge a keyframe is looked
// for; with none there (a very long GOP), the edge stays where it was.
const KeyframeWindow = 10.0

// KeyframeArgs asks ffprobe for the video keyframes in a window after each
// of times (seconds from the start of the source), reading only those
// windows, as JSON: the keyframes' times and the stream's start time.
func KeyframeArgs(in Input, times []float64) []string {
	args := []string{"-hide_banner", "-v", "error"}
	args = append(args, in.options()...)
	iv := make([]string, len(times))
	for i, t := range times {
		iv[i] = secs(t) + "%+" + secs(KeyframeWindow)
	}
	// read_intervals seeks by absolute timestamps: the stream's start_time
	// is printed so callers can work in times from the start, as -ss does.
	return append(args, "-select_streams", "v:0", "-skip_frame", "nokey",
		"-show_entries", "stream=start_time:frame=pts_time", "-of", "json",
		"-read_intervals", strings.Join(iv, ","), in.URL)
}

// ParseKeyframes reads KeyframeArgs' output and returns the keyframe times
// relative to the stream's start, sorted.
func ParseKeyframes(out []byte) ([]float64, error) {
	var p struct {
		Frames []struct {
			PTSTime string `json:"pts_time"`
		} `json:"frames"`
		Streams []struct {
			StartTime string `json:"start_time"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("ffprobe keyframes: %w", err)
	}
	var start float64
	if len(p.Streams) > 0 {
		start, _ = strconv.ParseFloat(p.Streams[0].StartTime, 64)
	}
	var frames []float64
	for _, f := range p.Frames {
		if v, err := strconv.ParseFloat(f.PTSTime, 64); err == nil {
			frames = append(frames, v-start)
		}
	}
	sort.Float64s(frames)
	return frames, nil
}

// SnapToKeyframe moves a chunk edge to the first keyframe at or after it
// (within KeyframeWindow), then onto the output frame grid counted from the
// highlight's start, so that the two chunks meeting there, rendered by any
// agents, agree on it to the frame. No keyframe in reach keeps the edge.
func SnapToKeyframe(edge, highlightStart, fps float64, keyframes []float64) float64 {
	const eps = 1e-3
	t := edge
	for _, k := range keyframes {
		if k >= edge-eps && k <= edge+KeyframeWindow {
			t = k
			break
		}
	}
	if fps <= 0 {
		return t
	}
	return highlightStart + math.Round((t-highlightStart)*fps)/fps
}

// Keyframes runs KeyframeArgs.
func (t Tools) Keyframes(ctx context.Context, in Input, times []float64) ([]float64, error) {
	out, err := exec.CommandContext(ctx, t.FFprobe, KeyframeArgs(in, times)...).Output()
	if err != nil {
		return nil, fmt.Errorf("ffprobe keyframes: %w", err)
	}
	return ParseKeyframes(out)
}
