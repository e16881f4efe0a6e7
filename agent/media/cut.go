package media

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Copying cuts (profile cut: keyframe and smart) keep the source's own
// H.264 between keyframes. The pure half lives here: what ffprobe must
// tell (the video's codec parameters and packet times around the cut), the
// plan of pieces made from that, and the ffmpeg commands for each piece.
// Every piece is written as MPEG-TS, which carries the parameter sets in
// band before each keyframe, and the pieces of a segment are joined into an
// MP4 whose sample entry is avc3: a decoder then takes each piece's own
// SPS/PPS from the stream, so copied source GOPs and x264's re-encoded
// edges decode as one stream even though their parameter sets differ.

// Packet is one video packet of a source, in seconds from the file's
// start, as ffprobe reads it (in decode order).
type Packet struct {
	PTS, DTS float64
	Key      bool
}

// VideoParams are a video stream's codec parameters: what must be equal for
// copied video to join without a glitch.
type VideoParams struct {
	Codec, Profile string
	Level          int
	Width, Height  int
	PixFmt         string
	SAR            string
	FrameRate      string // r_frame_rate, e.g. "60/1"
	FieldOrder     string
	// Reorder is the decoder's reordering depth (has_b_frames): how many
	// frames a decode-order timestamp runs behind its presentation.
	Reorder int
	// Extradata is a hash of the parameter sets out of band (avcC).
	Extradata string
}

// FPS is the frame rate as a number (0 when unknown).
func (v VideoParams) FPS() float64 { return ParseRate(v.FrameRate) }

// String writes the parameters as "name=value" words in a fixed order; a
// keyframe cut compares segments by these words (see DiffParams).
func (v VideoParams) String() string {
	return fmt.Sprintf("codec=%s profile=%s level=%d size=%dx%d fps=%s pix_fmt=%s sar=%s field_order=%s reorder=%d parameter_sets=%s",
		word(v.Codec), word(v.Profile), v.Level, v.Width, v.Height, word(v.FrameRate), word(v.PixFmt), word(v.SAR),
		word(v.FieldOrder), v.Reorder, word(v.Extradata))
}

func word(s string) string {
	if s == "" {
		return "?"
	}
	return strings.ReplaceAll(s, " ", "_")
}

// DiffParams names the parameters two VideoParams strings disagree on, as
// "size 1280x720 ≠ 1920x1080"; none when they are equal.
func DiffParams(a, b string) []string {
	split := func(s string) (keys []string, vals map[string]string) {
		vals = map[string]string{}
		for _, f := range strings.Fields(s) {
			k, v, _ := strings.Cut(f, "=")
			keys = append(keys, k)
			vals[k] = v
		}
		return keys, vals
	}
	keys, av := split(a)
	_, bv := split(b)
	var out []string
	for _, k := range keys {
		if av[k] != bv[k] {
			out = append(out, fmt.Sprintf("%s %s ≠ %s", k, av[k], bv[k]))
		}
	}
	return out
}

// CutWindow is how far before the asked start and after the asked end a
// copying cut reads packets, looking for the keyframes it snaps to.
const CutWindow = KeyframeWindow

// CutProbeArgs asks ffprobe for the first video stream's codec parameters
// (with a hash of its extradata) and its packets between from and to
// seconds, without decoding anything.
func CutProbeArgs(in Input, from, to float64) []string {
	args := []string{"-hide_banner", "-v", "error"}
	args = append(args, in.options()...)
	// read_intervals take the demuxer's own times, which for HLS start
	// past zero (windows are wide enough for that); a window from the
	// start reads without seeking, which an HLS demuxer cannot do to 0.
	iv := "%" + secs(to)
	if from > 0 {
		iv = secs(from) + iv
	}
	return append(args, "-select_streams", "v:0", "-show_data_hash", "sha256",
		"-show_entries", "stream=codec_name,profile,level,width,height,pix_fmt,sample_aspect_ratio,r_frame_rate,field_order,has_b_frames,start_time,extradata_hash:packet=pts_time,dts_time,flags:format=start_time",
		"-of", "json", "-read_intervals", iv, in.URL)
}

// ParseCutProbe reads CutProbeArgs' output: the parameters and the packets
// with times from the file's start (as -ss counts them), in decode order.
func ParseCutProbe(out []byte) (VideoParams, []Packet, error) {
	var p struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			Profile    string `json:"profile"`
			Level      int    `json:"level"`
			Width      int    `json:"width"`
			Height     int    `json:"height"`
			PixFmt     string `json:"pix_fmt"`
			SAR        string `json:"sample_aspect_ratio"`
			Rate       string `json:"r_frame_rate"`
			FieldOrder string `json:"field_order"`
			HasB       int    `json:"has_b_frames"`
			StartTime  string `json:"start_time"`
			Extradata  string `json:"extradata_hash"`
		} `json:"streams"`
		Packets []struct {
			PTS   string `json:"pts_time"`
			DTS   string `json:"dts_time"`
			Flags string `json:"flags"`
		} `json:"packets"`
		Format struct {
			StartTime string `json:"start_time"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return VideoParams{}, nil, fmt.Errorf("ffprobe packets: %w", err)
	}
	if len(p.Streams) == 0 {
		return VideoParams{}, nil, fmt.Errorf("ffprobe packets: the source has no video stream")
	}
	s := p.Streams[0]
	v := VideoParams{Codec: s.CodecName, Profile: s.Profile, Level: s.Level, Width: s.Width, Height: s.Height,
		PixFmt: s.PixFmt, SAR: s.SAR, FrameRate: s.Rate, FieldOrder: s.FieldOrder, Reorder: s.HasB}
	if _, h, ok := strings.Cut(s.Extradata, ":"); ok && len(h) >= 16 {
		v.Extradata = h[:16]
	}
	// ffmpeg's -ss counts from the file's start (its earliest stream's),
	// which is not always the video's: an HLS segment's audio often starts
	// a frame or two before its video. Times are counted the way -ss does.
	start, err := strconv.ParseFloat(p.Format.StartTime, 64)
	if err != nil {
		start, _ = strconv.ParseFloat(s.StartTime, 64)
	}
	var pk []Packet
	for _, q := range p.Packets {
		pts, err1 := strconv.ParseFloat(q.PTS, 64)
		dts, err2 := strconv.ParseFloat(q.DTS, 64)
		if err1 != nil {
			continue // a packet without a time cannot be placed
		}
		if err2 != nil {
			dts = pts
		}
		pk = append(pk, Packet{PTS: pts - start, DTS: dts - start, Key: strings.HasPrefix(q.Flags, "K")})
	}
	return v, pk, nil
}

// Cut modes of a segment, as reported in its facts and the manifest.
const (
	CutEncoded = "encode"
	CutCopied  = "copy"
	CutSmart   = "smart"
)

// Piece is one run of a segment's video: copied from the source starting
// at the keyframe at Start, or re-encoded from the first frame at or after
// Start; Frames long either way.
type Piece struct {
	Copy   bool
	Start  float64
	Frames int
	// AtKey: Start is a keyframe, so a re-encode can start decoding there
	// instead of at the keyframe before it.
	AtKey bool
	// Seek is where to aim a seek that must land on the keyframe at Start
	// (a copy, or AtKey): halfway to the next keyframe. Demuxers land on
	// a keyframe differently (MP4 on the last at or before the target;
	// HLS, counting from its segments' decode times, can land a GOP early
	// on a target just past the keyframe); mid-GOP both land on Start.
	Seek float64
}

// seekInto is the seek target for the keyframe at k (see Piece.Seek).
func seekInto(pk []Packet, k float64) float64 {
	next := math.Inf(1)
	for _, p := range pk {
		if p.Key && p.PTS > k+eps && p.PTS < next {
			next = p.PTS
		}
	}
	if math.IsInf(next, 1) {
		return k + 0.001 // past any rounding, short of any next frame
	}
	return k + (next-k)/2
}

// CutPlan is how a segment's video is made.
type CutPlan struct {
	Mode string // CutCopied, CutSmart or CutEncoded
	// Note says why a smart cut re-encodes the whole highlight.
	Note   string
	Pieces []Piece
	// Start and Frames are where the segment really starts in the source
	// and how many frames it lasts.
	Start  float64
	Frames int
	// Copied is how many of the frames are copied.
	Copied int
	// Seconds is a keyframe cut's length from the keyframes' own times
	// (0: Frames at the frame rate), right for a variable frame rate too.
	Seconds float64
}

// eps absorbs the rounding of times printed to microseconds.
const eps = 1e-4

// openGOP reports a keyframe whose GOP has leading pictures: frames after
// it in decode order that show before it, which reference the GOP before
// and cannot be copied without it.
func openGOP(pk []Packet, i int) bool {
	for j := i + 1; j < len(pk) && !pk[j].Key; j++ {
		if pk[j].PTS < pk[i].PTS-eps {
			return true
		}
	}
	return false
}

// framesIn counts the packets that show in [from, to).
func framesIn(pk []Packet, from, to float64) int {
	n := 0
	for _, p := range pk {
		if p.PTS >= from-eps && p.PTS < to-eps {
			n++
		}
	}
	return n
}

// copySpanExact reports whether the packets in decode order from keyframe
// a up to keyframe b are exactly those that show in [a, b): nothing of the
// span is decoded after b's keyframe, nothing before a's; then "copy this
// many packets from a" is the span, frame for frame.
func copySpanExact(pk []Packet, a, b int) bool {
	for j := a; j < b; j++ {
		if pk[j].PTS < pk[a].PTS-eps || pk[j].PTS >= pk[b].PTS-eps {
			return false
		}
	}
	return framesIn(pk, pk[a].PTS, pk[b].PTS) == b-a
}

// PlanKeyframeCut copies whole GOPs: from the keyframe at or before start
// to the keyframe at or after start+duration (or the end of the source,
// when the packets read end before a keyframe is found and readTo lies
// past them).
func PlanKeyframeCut(pk []Packet, start, duration, readTo float64) (CutPlan, error) {
	end := start + duration
	first, last := -1, -1
	for i, p := range pk {
		if !p.Key {
			continue
		}
		if p.PTS <= start+eps && (first < 0 || p.PTS > pk[first].PTS) {
			first = i
		}
		if p.PTS >= end-eps && (last < 0 || p.PTS < pk[last].PTS) {
			last = i
		}
	}
	if first < 0 {
		return CutPlan{}, fmt.Errorf("no keyframe in the %g s before %s: the source's GOPs are too long to cut at keyframes", CutWindow, secs(start))
	}
	if openGOP(pk, first) {
		return CutPlan{}, fmt.Errorf("the source has open GOPs (frames before the keyframe at %s s depend on the GOP before it): cut: keyframe cannot copy it; use smart or exact", secs(pk[first].PTS))
	}
	var (
		frames  int
		seconds float64
	)
	if last >= 0 {
		if !copySpanExact(pk, first, last) {
			return CutPlan{}, fmt.Errorf("frames of the source are reordered across its keyframes between %s and %s s: cut: keyframe cannot copy it; use smart or exact", secs(pk[first].PTS), secs(pk[last].PTS))
		}
		frames, seconds = last-first, pk[last].PTS-pk[first].PTS
	} else {
		endOfSource := len(pk) > 0 && pk[len(pk)-1].PTS < readTo-2*CutWindow/3
		if !endOfSource {
			return CutPlan{}, fmt.Errorf("no keyframe in the %g s after %s: the source's GOPs are too long to cut at keyframes", CutWindow, secs(end))
		}
		frames = framesIn(pk, pk[first].PTS, math.Inf(1))
	}
	if frames <= 0 {
		return CutPlan{}, fmt.Errorf("the cut at %s s holds no frame", secs(start))
	}
	return CutPlan{Mode: CutCopied, Pieces: []Piece{{Copy: true, Start: pk[first].PTS, Frames: frames, Seek: seekInto(pk, pk[first].PTS)}},
		Start: pk[first].PTS, Frames: frames, Copied: frames, Seconds: seconds}, nil
}

// SmartEdges are the re-encoded lengths a smart cut keeps at each edge at
// least: fades and the title are drawn there.
type SmartEdges struct{ Head, Tail float64 }

// PlanSmartCut copies the whole GOPs that lie inside [start+edges.Head,
// end-edges.Tail] and re-encodes from start to the first of them and from
// the last keyframe to the end; frames is the segment's length. With no
// whole GOP inside, or a source whose GOPs cannot be copied exactly, the
// plan re-encodes everything and says why.
func PlanSmartCut(pk []Packet, start float64, frames int, fps float64, edges SmartEdges) CutPlan {
	whole := func(note string) CutPlan {
		return CutPlan{Mode: CutEncoded, Note: note, Pieces: []Piece{{Start: start, Frames: frames}}, Start: start, Frames: frames}
	}
	// The cut starts at the first source frame at or after start, as a
	// decoded seek keeps it; the head's frames are counted from there.
	first := math.Inf(1)
	for _, p := range pk {
		if p.PTS >= start-quarterFrame(fps) && p.PTS < first {
			first = p.PTS
		}
	}
	if math.IsInf(first, 1) {
		return whole("no frames of the source were found at the cut")
	}
	end := first + float64(frames)/fps
	var keys []int
	for i, p := range pk {
		if p.Key && p.PTS >= first+edges.Head-eps && p.PTS <= end-edges.Tail+eps {
			keys = append(keys, i)
		}
	}
	sort.Slice(keys, func(a, b int) bool { return pk[keys[a]].PTS < pk[keys[b]].PTS })
	if len(keys) < 2 {
		return whole("the highlight holds no whole GOP of the source to copy")
	}
	a, b := keys[0], keys[len(keys)-1]
	for _, k := range keys {
		if openGOP(pk, k) {
			return whole(fmt.Sprintf("the source has open GOPs (frames before the keyframe at %.3f s depend on the GOP before it)", pk[k].PTS))
		}
	}
	if !copySpanExact(pk, a, b) {
		return whole(fmt.Sprintf("frames of the source are reordered across its keyframes between %.3f and %.3f s", pk[a].PTS, pk[b].PTS))
	}
	copied := b - a
	if want := int(math.Round((pk[b].PTS - pk[a].PTS) * fps)); want != copied {
		return whole(fmt.Sprintf("the source's frame rate is not constant (%d frames where %g fps makes %d)", copied, fps, want))
	}
	head := framesIn(pk, first, pk[a].PTS)
	tail := frames - head - copied
	if head < 0 || tail < 0 {
		return whole("the keyframes fall outside the cut")
	}
	var pieces []Piece
	if head > 0 {
		atKey := false
		for _, p := range pk {
			atKey = atKey || p.Key && math.Abs(p.PTS-first) < eps
		}
		h := Piece{Start: first, Frames: head, AtKey: atKey}
		if atKey {
			h.Seek = seekInto(pk, first)
		}
		pieces = append(pieces, h)
	}
	pieces = append(pieces, Piece{Copy: true, Start: pk[a].PTS, Frames: copied, Seek: seekInto(pk, pk[a].PTS)})
	if tail > 0 {
		pieces = append(pieces, Piece{Start: pk[b].PTS, Frames: tail, AtKey: true, Seek: seekInto(pk, pk[b].PTS)})
	}
	return CutPlan{Mode: CutSmart, Pieces: pieces, Start: first, Frames: frames, Copied: copied}
}

// SmartMismatch says why a source's video cannot be copied into a montage
// of the profile (x264 must re-encode its edges to match it); "" when it
// can.
func SmartMismatch(v VideoParams, p Profile) string {
	switch {
	case v.Codec != "h264":
		return fmt.Sprintf("the source is %s, not H.264", word(v.Codec))
	case v.Width != p.Width || v.Height != p.Height:
		return fmt.Sprintf("the source is %dx%d, the montage %dx%d", v.Width, v.Height, p.Width, p.Height)
	case math.Abs(v.FPS()-p.FPS) > 0.001:
		return fmt.Sprintf("the source runs at %s fps, the montage at %s", word(v.FrameRate), FPSRational(p.FPS))
	case v.PixFmt != "yuv420p":
		return fmt.Sprintf("the source's pixels are %s, not yuv420p", word(v.PixFmt))
	case v.SAR != "" && v.SAR != "1:1" && v.SAR != "0:1" && v.SAR != "N/A":
		return fmt.Sprintf("the source's pixels are not square (SAR %s)", v.SAR)
	case v.FieldOrder != "" && v.FieldOrder != "progressive" && v.FieldOrder != "unknown":
		return fmt.Sprintf("the source is interlaced (%s)", v.FieldOrder)
	case v.Reorder > 2:
		return fmt.Sprintf("the source reorders %d frames; x264 matches at most 2", v.Reorder)
	case !strings.Contains(v.Profile, "High") && !strings.Contains(v.Profile, "Main") && !strings.Contains(v.Profile, "Baseline") ||
		strings.Contains(v.Profile, "10") || strings.Contains(v.Profile, "4:2:2") || strings.Contains(v.Profile, "4:4:4"):
		return fmt.Sprintf("the source's H.264 profile is %s", word(v.Profile))
	}
	return ""
}

// Quarter of a frame: a decoded seek aims this far before a frame so that
// the frame is the first kept; a copying seek aims this far after a
// keyframe so that it lands on it, whichever way the time was rounded.
func quarterFrame(fps float64) float64 { return 0.25 / fps }

// PieceOptions are the x264 settings of a re-encoded piece: in-band
// parameter sets before every keyframe (the joined stream has no single
// set), and the source's reordering depth, so the piece's decode times run
// as far behind its presentation times as the copied GOPs' do and the
// joins keep decode times rising. reorder < 0 keeps the preset's.
func PieceOptions(reorder int) []string {
	out := []string{"-x264-params", "repeat-headers=1"}
	switch {
	case reorder == 0:
		out = append(out, "-bf", "0")
	case reorder == 1:
		out = append(out, "-bf", "3", "-b-pyramid", "none")
	case reorder >= 2:
		out = append(out, "-bf", "3", "-b-pyramid", "normal")
	}
	return out
}

// EncodePieceArgs re-encodes a piece of r's video (r.Start is the piece's
// start, r.Duration its length; fades and the title as r says) as MPEG-TS.
// Decoding aims a quarter frame early so the piece's first frame is the
// one at r.Start; a piece of a file that starts at a keyframe (seek > 0:
// see Piece.Seek) lands on it and keeps it without decoding the GOP
// before.
func EncodePieceArgs(r Render, frames, reorder int, seek float64, out string) []string {
	args := head()
	args = append(args, r.Video.options()...)
	if seek > 0 && r.Video.Kind != SourceHLS {
		// What a seek lands before its target keeps negative times, which
		// a constant frame rate output would drop: -itsoffset moves the
		// keyframe back to zero. (HLS is left out: its demuxer drops what
		// lies before the target itself, so the keyframe would be lost.)
		args = append(args, "-noaccurate_seek", "-ss", secs(seek), "-itsoffset", secs(seek-r.Start))
	} else {
		args = append(args, "-ss", secs(math.Max(0, r.Start-quarterFrame(r.Profile.FPS))))
	}
	args = append(args, "-i", r.Video.URL)
	args = append(args, "-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", strconv.Itoa(frames), "-vf", VideoFilter(r), "-fps_mode", "cfr")
	args = append(args, EncoderArgs(r.Profile)...)
	args = append(args, PieceOptions(reorder)...)
	args = append(args, "-map_metadata", "-1")
	args = append(args, progressArgs...)
	return append(args, "-f", "mpegts", out)
}

// CopyPieceArgs copies frames packets of the source's video from the
// keyframe at start, which a seek to seek lands on (see Piece.Seek), as
// MPEG-TS (the parameter sets go in band); -copypriorss keeps the packets
// between the keyframe and the target, and -itsoffset starts them at zero.
func CopyPieceArgs(in Input, start, seek float64, frames int, out string) []string {
	args := head()
	args = append(args, in.options()...)
	args = append(args, "-ss", secs(seek), "-itsoffset", secs(seek-start), "-i", in.URL,
		"-map", "0:v:0", "-an", "-sn", "-dn", "-c:v", "copy", "-copypriorss", "1", "-frames:v", strconv.Itoa(frames),
		"-map_metadata", "-1")
	args = append(args, progressArgs...)
	return append(args, "-f", "mpegts", out)
}

// SegmentAudioArgs cuts r's audio (48 kHz stereo, padded with silence to
// r.Duration) into a float WAV beside the video pieces; with measure, it
// also measures its loudness (ebur128's summary on stderr, so this logs at
// info).
func SegmentAudioArgs(r Render, wav string, measure bool) []string {
	lvl := "error"
	if measure {
		lvl = "info"
	}
	args := []string{"-nostdin", "-hide_banner", "-v", lvl, "-nostats", "-y"}
	args, audio := r.inputs(args)
	args = append(args, "-filter_complex", keptAudio(audio, r.Duration, measure), "-map", "[keep]", "-c:a", "pcm_f32le", "-f", "wav", wav)
	if measure {
		args = append(args, "-map", "[measured]", "-f", "null", "-")
	}
	return args
}

// JoinPiecesArgs joins a segment's video pieces (listed in a concat file)
// by copy with its audio (levelled by m when set, faded as r says) into
// the segment's MP4: avc3, so each piece's in-band parameter sets rule.
func JoinPiecesArgs(r Render, m *Loudness, list, wav string) []string {
	args := head()
	args = append(args, "-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", list,
		"-protocol_whitelist", "file", "-i", wav, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-tag:v", "avc3")
	args = append(args, levelledAudio(r, m)...)
	args = append(args, "-video_track_timescale", "90000", "-map_metadata", "-1", "-movflags", "+faststart")
	args = append(args, progressArgs...)
	return append(args, "-f", "mp4", r.Output)
}
