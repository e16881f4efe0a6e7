// Package media builds and runs the agent's ffmpeg and ffprobe commands. The
// argument builders are pure so that tests can pin them (golden files); the
// runners are thin wrappers around exec.
package media

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/stream-montages/montage/internal/spec"
)

// Profile is the encoding every segment of one job shares.
type Profile struct {
	Width, Height int
	FPS           float64
	Quality       int    // 0..51, CRF-like
	AudioBitrate  string // e.g. "160k"
	// Encoder is the job's ffmpeg encoder ("libx264", "hevc_nvenc", ...);
	// empty means libx264.
	Encoder string
	// Crop fills the frame and crops the overflow; otherwise letterbox.
	Crop bool
	// Fade is the length of fades at a highlight's edges; 0 for none.
	Fade float64
	// Loudness is the EBU R128 target in LUFS; 0 keeps the source's levels.
	Loudness float64
	// Preset is an x264 preset name ("" is veryfast); other encoders get
	// the nearest of theirs.
	Preset string
	// Cut is "" (exact), "keyframe" or "smart": see cut.go.
	Cut string
}

// presetIndex places a preset name on x264's scale, 0 (ultrafast) to 8
// (veryslow); veryfast (2) when empty or unknown.
func presetIndex(name string) int {
	for i, n := range []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"} {
		if n == name {
			return i
		}
	}
	return 2
}

func (p Profile) x264Preset() string {
	return []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"}[presetIndex(p.Preset)]
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

// VideoEncoder is the encoder the profile renders with.
func (p Profile) VideoEncoder() string { return p.encoder() }

func (p Profile) encoder() string {
	if p.Encoder == "" {
		return "libx264"
	}
	return p.Encoder
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

// Input is one untrusted network input of a render.
type Input struct {
	URL  string
	Kind SourceKind
	// Headers yt-dlp says the media server wants (User-Agent, Referer, ...).
	Headers map[string]string
	// Proxied: URL is the agent's range proxy on loopback; a small receive
	// buffer keeps ffmpeg from pulling far ahead of what it decodes.
	Proxied bool
}

// InputOptions are the options placed before an untrusted source's -i: a
// protocol whitelist with only what the kind needs (never file, concat,
// subfile, data or pipe, which would let a playlist read local files) and a
// forced demuxer where the kind is known. A proxied input reaches only the
// agent's proxy on loopback over plain http: the proxy makes the real
// connections, through the egress policy, and rewrites every absolute URI
// in a playlist to itself, so an https URI that ffmpeg would open directly
// has no protocol to open it with.
func InputOptions(kind SourceKind, proxied bool) []string {
	protocols := "http,https,tcp,tls"
	if proxied {
		protocols = "http,tcp"
	}
	switch kind {
	case SourceHLS:
		// A small probe: stream facts come from the first segment, not
		// from megabytes of segments the cut may never use; and no second
		// connection opening the next segment ahead (http_multiple), which
		// fetches a segment past the cut's end.
		return []string{"-protocol_whitelist", protocols + ",crypto", "-f", "hls", "-http_multiple", "0", "-probesize", "500000", "-analyzeduration", "1000000"}
	default:
		return []string{"-protocol_whitelist", protocols}
	}
}

func (in Input) options() []string {
	out := InputOptions(in.Kind, in.Proxied)
	if in.Proxied {
		out = append(out, "-recv_buffer_size", "65536")
	}
	if len(in.Headers) == 0 {
		return out
	}
	keys := make([]string, 0, len(in.Headers))
	for k := range in.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		// A header value with a line break would smuggle another header.
		v := strings.NewReplacer("\r", " ", "\n", " ").Replace(in.Headers[k])
		if strings.ContainsAny(k, "\r\n:") {
			continue
		}
		b.WriteString(k + ": " + v + "\r\n")
	}
	return append(out, "-headers", b.String())
}

// Render describes one cut.
type Render struct {
	Video Input
	// Audio is a separate audio input (yt-dlp's split formats); nil means
	// the audio comes from Video when HasAudio.
	Audio    *Input
	Start    float64 // seconds into the source
	Duration float64 // seconds to keep
	HasAudio bool    // false: generated silence is used
	Profile  Profile
	// Fades at the highlight's edges; a chunk inside a highlight has none.
	FadeIn, FadeOut bool
	// TitleFile holds text to draw (drawtext reads it from the file, so a
	// title can never inject filter syntax); FontFile is the font.
	TitleFile    string
	FontFile     string
	TitleSeconds float64
	// SubtitlesFile is an SRT of cues in this cut's own time, drawn into
	// the picture (subtitles: burn); FontsDir is where libass may look for
	// fonts beside the system's.
	SubtitlesFile string
	FontsDir      string
	Output        string
	// Whole is the highlight's length when this render is a piece of it
	// (a smart cut's re-encoded edge): fades are sized by the whole.
	Whole float64
}

// SubtitleStyle is how burned subtitles look: white on a dark outline and
// shadow, bottom centre, sized on libass's 288-line canvas (about 5.5% of
// the frame's height), so they read on any picture at any resolution.
const SubtitleStyle = "FontName=DejaVu Sans,FontSize=16,PrimaryColour=&H00FFFFFF,OutlineColour=&H00000000," +
	"BackColour=&H80000000,BorderStyle=1,Outline=1.5,Shadow=0.75,Alignment=2,MarginV=16"

// secs writes seconds for ffmpeg with microsecond precision: whole-frame
// durations like 1001/30000 must not be rounded to milliseconds.
func secs(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }

// filterPath escapes a path for a filter option inside a filtergraph: once
// for the option parser (which splits on ':') and once more for the graph
// parser (which splits on ',', ';' and brackets).
func filterPath(p string) string {
	opt := strings.NewReplacer(`\`, `\\`, "'", `\'`, ":", `\:`).Replace(p)
	return strings.NewReplacer(`\`, `\\`, "'", `\'`, "[", `\[`, "]", `\]`, ",", `\,`, ";", `\;`).Replace(opt)
}

// VideoFilter normalises any source to the profile: constant frame rate,
// scaled to fit and padded (letterbox) or scaled to fill and cropped, square
// pixels, yuv420p; then fades and the title.
func VideoFilter(r Render) string {
	p := r.Profile
	f := "fps=" + FPSRational(p.FPS) + ","
	if p.Crop {
		f += fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d", p.Width, p.Height, p.Width, p.Height)
	} else {
		f += fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=decrease:force_divisible_by=2,"+
			"pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=black", p.Width, p.Height, p.Width, p.Height)
	}
	f += ",setsar=1,format=yuv420p"
	if r.SubtitlesFile != "" {
		// Before the fades, so the words fade with the picture.
		f += ",subtitles=filename=" + filterPath(r.SubtitlesFile)
		if r.FontsDir != "" {
			f += ":fontsdir=" + filterPath(r.FontsDir)
		}
		f += ":force_style=" + filterPath(SubtitleStyle)
	}
	if fade := FadeLength(r); fade > 0 {
		if r.FadeIn {
			f += ",fade=t=in:st=0:d=" + secs(fade)
		}
		if r.FadeOut {
			f += ",fade=t=out:st=" + secs(r.Duration-fade) + ":d=" + secs(fade)
		}
	}
	if r.TitleFile != "" && r.FontFile != "" {
		size := max(16, p.Height/16)
		y := fmt.Sprintf("h-text_h-%d", p.Height/12)
		if r.SubtitlesFile != "" {
			y = strconv.Itoa(p.Height / 12) // the bottom is the subtitles'
		}
		f += fmt.Sprintf(",drawtext=fontfile=%s:textfile=%s:expansion=none:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=%d:x=(w-text_w)/2:y=%s:enable='lt(t,%s)'",
			filterPath(r.FontFile), filterPath(r.TitleFile), size, size/3, y, secs(r.TitleSeconds))
	}
	if spec.EncoderFamily(p.encoder()) == "vaapi" {
		f += ",format=nv12,hwupload"
	}
	return f
}

// FadeLength is the fades' length: the profile's, within a third of a
// short clip.
func FadeLength(r Render) float64 {
	if r.Whole > 0 {
		return math.Min(r.Profile.Fade, r.Whole/3)
	}
	return math.Min(r.Profile.Fade, r.Duration/3)
}

// audioBase brings any audio to 48 kHz stereo.
const audioBase = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"

// AudioFilter brings any audio to 48 kHz stereo, fades it with the video and
// pads it with silence so that it never ends before the video (-t then ends
// both together).
func AudioFilter(r Render) string {
	return audioBase + audioFades(r) + ",apad"
}

func audioFades(r Render) string {
	fade := FadeLength(r)
	if fade <= 0 {
		return ""
	}
	s := ""
	if r.FadeIn {
		s += ",afade=t=in:st=0:d=" + secs(fade)
	}
	if r.FadeOut {
		s += ",afade=t=out:st=" + secs(r.Duration-fade) + ":d=" + secs(fade)
	}
	return s
}

// GlobalOptions are the options an encoder needs before the inputs (a VAAPI
// device).
func GlobalOptions(enc string) []string {
	if spec.EncoderFamily(enc) == "vaapi" {
		return []string{"-vaapi_device", "/dev/dri/renderD128"}
	}
	return nil
}

// EncoderArgs are the video encoder options for the profile: one fixed GOP
// without scene-cut keyframes, so every segment has the same structure, and
// constant quality mapped onto each encoder's scale.
func EncoderArgs(p Profile) []string {
	enc := p.encoder()
	q := p.Quality
	g := strconv.Itoa(p.GOP())
	args := []string{"-c:v", enc}
	switch enc {
	case "libx264":
		args = append(args, "-preset", p.x264Preset(), "-crf", strconv.Itoa(q), "-profile:v", "high", "-pix_fmt", "yuv420p",
			"-g", g, "-keyint_min", g, "-sc_threshold", "0")
	case "libx265":
		args = append(args, "-preset", p.x264Preset(), "-crf", strconv.Itoa(q), "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
			"-g", g, "-keyint_min", g, "-x265-params", "scenecut=0:open-gop=0:log-level=error")
	case "libsvtav1":
		// SVT-AV1 runs 0 (slowest) to 13; veryfast is its 10.
		svt := []string{"12", "11", "10", "9", "8", "6", "4", "3", "2"}[presetIndex(p.Preset)]
		args = append(args, "-preset", svt, "-crf", strconv.Itoa(int(math.Round(float64(q)*63/51))), "-pix_fmt", "yuv420p",
			"-g", g, "-svtav1-params", "scd=0")
	default:
		switch spec.EncoderFamily(enc) {
		case "nvenc":
			// NVENC runs p1 (fastest) to p7; veryfast stays p4 as before.
			nv := []string{"p1", "p2", "p4", "p4", "p5", "p5", "p6", "p7", "p7"}[presetIndex(p.Preset)]
			args = append(args, "-preset", nv, "-rc", "vbr", "-cq", strconv.Itoa(q), "-b:v", "0", "-pix_fmt", "yuv420p",
				"-g", g, "-no-scenecut", "1")
		case "qsv":
			args = append(args, "-global_quality", strconv.Itoa(q), "-look_ahead", "0", "-pix_fmt", "nv12", "-g", g)
		case "vaapi":
			args = append(args, "-rc_mode", "CQP", "-qp", strconv.Itoa(q), "-g", g)
		case "videotoolbox":
			args = append(args, "-q:v", strconv.Itoa(max(1, 100-2*q)), "-allow_sw", "0", "-pix_fmt", "yuv420p", "-g", g)
		case "amf":
			args = append(args, "-rc", "cqp", "-qp_i", strconv.Itoa(q), "-qp_p", strconv.Itoa(q), "-qp_b", strconv.Itoa(q),
				"-pix_fmt", "yuv420p", "-g", g)
		}
		if strings.HasPrefix(enc, "hevc_") {
			args = append(args, "-tag:v", "hvc1")
		}
	}
	return args
}

// inputs appends the source inputs with their seeks and returns the audio
// stream specifier.
func (r Render) inputs(args []string) ([]string, string) {
	args = append(args, GlobalOptions(r.Profile.encoder())...)
	args = append(args, r.Video.options()...)
	args = append(args, "-ss", secs(r.Start), "-i", r.Video.URL)
	switch {
	case r.Audio != nil:
		args = append(args, r.Audio.options()...)
		args = append(args, "-ss", secs(r.Start), "-i", r.Audio.URL)
		return args, "1:a:0"
	case r.HasAudio:
		return args, "0:a:0"
	}
	return append(args, "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo"), "1:a:0"
}

func head() []string { return []string{"-nostdin", "-hide_banner", "-v", "error", "-y"} }

var progressArgs = []string{"-progress", "pipe:1", "-nostats"}

// videoOut are the options of a segment's video: one encode at the profile's
// constant frame rate and the time base every segment shares.
func (r Render) videoOut() []string {
	args := []string{"-t", secs(r.Duration), "-vf", VideoFilter(r), "-fps_mode", "cfr"}
	args = append(args, EncoderArgs(r.Profile)...)
	return append(args, "-video_track_timescale", "90000", "-map_metadata", "-1", "-map_chapters", "-1")
}

// segmentAudio is how segments keep their audio: lossless ALAC, which has
// no encoder priming and no padding, so each segment's audio lasts exactly
// as long as its video and the concat demuxer joins them sample-exact. The
// montage's AAC is encoded once, in the concat. (AAC segments put 1024
// priming samples and up to a frame of padding at every join: the audio
// drifts about 20 ms per join and the copied video starts 21 ms late.)
var segmentAudio = []string{"-c:a", "alac", "-ar", "48000", "-ac", "2"}

// WholeFrames rounds a duration to whole frames of the profile, so that a
// segment's audio can last exactly as long as its video.
func WholeFrames(d, fps float64) float64 {
	if fps <= 0 {
		return d
	}
	return math.Max(1, math.Round(d*fps)) / fps
}

// RenderArgs builds the one-pass ffmpeg command line (without the program
// name) for a segment whose audio keeps its levels. -ss sits before -i so
// ffmpeg seeks by range request instead of reading the source from its start;
// -t sits on the output.
func RenderArgs(r Render) []string {
	args, audio := r.inputs(head())
	args = append(args, "-map", "0:v:0", "-map", audio)
	args = append(args, r.videoOut()...)
	args = append(args, "-af", AudioFilter(r), "-shortest")
	args = append(args, segmentAudio...)
	args = append(args, "-movflags", "+faststart")
	args = append(args, progressArgs...)
	return append(args, "-f", "mp4", r.Output)
}

// MeasurePassArgs is the first of two passes when loudness is normalised: it
// reads the source once, encodes the video to videoOut, keeps the audio as
// PCM in audioOut and measures its loudness (ebur128's summary on stderr, so
// this pass logs at info). The second pass (ApplyPassArgs) only touches the
// local files, so the source is fetched once.
func MeasurePassArgs(r Render, videoOut, audioOut string) []string {
	args := []string{"-nostdin", "-hide_banner", "-v", "info", "-nostats", "-y"}
	args, audio := r.inputs(args)
	args = append(args, "-filter_complex", keptAudio(audio, r.Duration, true))
	args = append(args, "-map", "0:v:0")
	args = append(args, r.videoOut()...)
	args = append(args, "-an", "-f", "mp4", videoOut)
	args = append(args, "-map", "[keep]", "-c:a", "pcm_f32le", "-f", "wav", audioOut)
	args = append(args, "-map", "[measured]", "-f", "null", "-")
	return append(args, "-progress", "pipe:1")
}

// keptAudio is the filtergraph that brings a render's audio to 48 kHz
// stereo lasting d seconds as [keep] and, with measure, also sends it
// through MeasureFilter as [measured].
func keptAudio(audio string, d float64, measure bool) string {
	fc := fmt.Sprintf("[%s]%s,apad,atrim=duration=%s", audio, audioBase, secs(d))
	if measure {
		return fc + ",asplit=2[keep][measure];[measure]" + MeasureFilter + "[measured]"
	}
	return fc + "[keep]"
}

// TruePeak and LoudnessRange are the loudnorm targets besides integrated
// loudness: -1.5 dBTP leaves room for lossy encoding.
const (
	TruePeak      = -1.5
	LoudnessRange = 11.0
)

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Loudness is loudnorm's first-pass measurement.
type Loudness struct {
	I, TP, LRA, Thresh, Offset float64
}

// ApplyPassArgs muxes the encoded video with the audio brought to the
// target: loudnorm in linear mode with the measured values (one gain for
// the whole segment, no pumping), then fades, moov first. m nil means
// the audio is silent and kept as it is.
func ApplyPassArgs(r Render, m *Loudness, videoIn, audioIn string) []string {
	args := head()
	args = append(args, "-i", videoIn, "-i", audioIn, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy")
	args = append(args, levelledAudio(r, m)...)
	args = append(args, "-map_metadata", "-1", "-movflags", "+faststart")
	args = append(args, progressArgs...)
	return append(args, "-f", "mp4", r.Output)
}

// levelledAudio are the output options of a segment's audio from a kept
// WAV: loudnorm in linear mode with the measured values (m nil: levels
// kept), fades, cut to r.Duration, ALAC.
func levelledAudio(r Render, m *Loudness) []string {
	af := LevelFilter(r.Profile, m) + audioBase + audioFades(r)
	return append([]string{"-af", af, "-t", secs(r.Duration)}, segmentAudio...)
}

// MeasureFilter measures EBU R128 loudness: integrated loudness with its
// gate, range and true peak, summed up on stderr at the end (at info
// level; framelog=verbose keeps the ten lines a second out of it). It runs
// about three times as fast as loudnorm's first pass, which resamples to
// 192 kHz to find the same numbers.
const MeasureFilter = "ebur128=peak=true:framelog=verbose"

// LevelFilter brings measured audio to the profile's target (a filter with
// a trailing comma; "" with nothing measured). When one gain can do it
// without the true peak passing TruePeak, it is one volume change, as
// loudnorm's linear mode would make, at a fraction of its cost; otherwise
// loudnorm levels it dynamically from the measured values.
func LevelFilter(p Profile, m *Loudness) string {
	if m == nil {
		return ""
	}
	gain := p.Loudness - m.I
	if m.TP+gain <= TruePeak {
		return "volume=" + strconv.FormatFloat(gain, 'f', 2, 64) + "dB,"
	}
	return fmt.Sprintf("loudnorm=I=%s:TP=%s:LRA=%s:measured_I=%s:measured_TP=%s:measured_LRA=%s:measured_thresh=%s:offset=%s:linear=true,",
		num(p.Loudness), num(TruePeak), num(LoudnessRange), num(m.I), num(m.TP), num(m.LRA), num(m.Thresh), num(m.Offset))
}

// MontageRate is the montage audio's sample rate: every segment's audio is
// 48 kHz stereo (audioBase), and so is the PCM the montage's encoder reads.
const MontageRate = 48000

// MontageAudioArgs is the montage's one AAC encode: 48 kHz stereo float PCM
// arriving on stdin, segment after segment (see SegmentPCMArgs), into an
// M4A whose edit list hides the encoder's priming. Encoding the joined
// audio once removes the priming gaps AAC would leave at every join. It
// reads only its pipe: nothing on the command line names a source.
func MontageAudioArgs(audioBitrate, output string) []string {
	return []string{"-hide_banner", "-v", "error", "-y",
		"-protocol_whitelist", "pipe", "-f", "f32le", "-ar", strconv.Itoa(MontageRate), "-ac", "2", "-i", "pipe:0",
		"-c:a", "aac", "-b:a", audioBitrate, "-f", "mp4", output}
}

// SegmentPCMArgs decodes a local segment's audio to the montage encoder's
// PCM on stdout, exactly samples long: the segment's place in the montage
// is fixed by the lengths of the segments before it, counted in samples,
// so the audio can never drift from the copied video.
func SegmentPCMArgs(segment string, samples int64) []string {
	return []string{"-nostdin", "-hide_banner", "-v", "error",
		"-protocol_whitelist", "file", "-i", segment,
		"-map", "0:a:0", "-af", fmt.Sprintf("%s,apad,atrim=end_sample=%d", audioBase, samples),
		"-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"}
}

// MuxMontageArgs joins segments listed in a concat-demuxer file with the
// montage's encoded audio: video and audio copied, chapters taken from an
// FFMETADATA file, moov atom first. The list, the segments and the audio
// are local files this agent wrote or downloaded, so only file is allowed.
// With inBand (the segments of a copying cut), the montage's sample entry
// is avc3: each segment's parameter sets travel in its samples.
func MuxMontageArgs(listPath, audioPath, metadataPath, output string, inBand bool) []string {
	tag := []string{}
	if inBand {
		tag = []string{"-tag:v", "avc3"}
	}
	return append([]string{
		"-nostdin", "-hide_banner", "-v", "error", "-y",
		"-f", "concat", "-safe", "0", "-protocol_whitelist", "file", "-i", listPath,
		"-protocol_whitelist", "file", "-i", audioPath,
		"-f", "ffmetadata", "-protocol_whitelist", "file", "-i", metadataPath,
		"-map", "0:v:0", "-map", "1:a:0",
		"-map_metadata", "2", "-map_chapters", "2",
		"-c", "copy"}, append(tag,
		"-movflags", "+faststart",
		"-progress", "pipe:1", "-nostats",
		"-f", "mp4", output)...)
}

// ThumbnailArgs grabs one frame at `at` seconds of a video as a JPEG no
// wider than 1280 pixels. With keyframe it is the first keyframe from `at`
// on, the only frame decoded (a 1080p60 GOP decoded up to `at` costs six
// times as much); a video with no keyframe after `at` then writes nothing.
func ThumbnailArgs(video string, at float64, keyframe bool, output string) []string {
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-protocol_whitelist", "file"}
	if keyframe {
		args = append(args, "-skip_frame", "nokey")
	}
	return append(args, "-ss", secs(at), "-i", video,
		"-frames:v", "1", "-vf", "scale='min(1280,iw)':-2", "-q:v", "3", "-f", "image2", output)
}

// TestEncodeArgs is the one-second encode that proves an encoder works on
// this machine (a listed encoder may have no device or driver behind it).
func TestEncodeArgs(p Profile) []string {
	args := []string{"-nostdin", "-hide_banner", "-v", "error", "-y"}
	args = append(args, GlobalOptions(p.encoder())...)
	args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=s=%dx%d:r=%s:d=1", p.Width, p.Height, FPSRational(p.FPS)),
		"-vf", VideoFilter(Render{Profile: p, Duration: 1}))
	args = append(args, EncoderArgs(p)...)
	return append(args, "-f", "null", "-")
}

// ProbeArgs asks ffprobe for streams and format as JSON, with the same
// protocol limits as a render of that source. It only needs to know which
// streams exist (an MP4's moov or an HLS segment's first tables say so), so
// it reads as little as it can: a full probe of an HLS playlist fetches
// megabytes of segments the cut may never use.
func ProbeArgs(in Input) []string {
	args := []string{"-hide_banner", "-v", "error"}
	args = append(args, in.options()...)
	args = append(args, "-probesize", "65536", "-analyzeduration", "0")
	return append(args, "-show_entries", "stream=index,codec_type,codec_name,width,height,r_frame_rate,sample_rate,channels:format=duration,format_name",
		"-of", "json", in.URL)
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

// TranscriptAudioArgs extract a highlight's audio for transcription: mono
// 16 kHz Opus at 24 kb/s in Ogg (about 0.18 MB a minute), straight from
// the source without decoding its video, while silencedetect reports the
// pauses on stderr (where the audio is cut into chunks).
func TranscriptAudioArgs(input string, start, duration float64, out string) []string {
	return []string{"-hide_banner", "-nostdin", "-y", "-ss", secs(start), "-i", input, "-t", secs(duration),
		"-vn", "-sn", "-dn", "-map", "0:a:0", "-ac", "1", "-ar", "16000",
		"-af", "silencedetect=noise=-35dB:d=0.4", "-c:a", "libopus", "-b:a", "24k", "-application", "voip",
		"-f", "ogg", out}
}

// AudioChunkArgs copy [start, end) of an extracted audio file.
func AudioChunkArgs(in string, start, end float64, out string) []string {
	return []string{"-hide_banner", "-nostdin", "-y", "-ss", secs(start), "-to", secs(end), "-i", in, "-c", "copy", "-f", "ogg", out}
}

// iso639 maps the two-letter language codes people give to the three
// letters MP4 tracks carry.
var iso639 = map[string]string{"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld",
	"pl": "pol", "ru": "rus", "ja": "jpn", "ko": "kor", "zh": "zho", "sv": "swe", "tr": "tur", "uk": "ukr"}

// EmbedSubtitlesArgs add srt to an MP4 as a soft (mov_text) subtitle
// track; video, audio and chapters are copied as they are.
func EmbedSubtitlesArgs(in, srt, language, out string) []string {
	args := []string{"-hide_banner", "-nostdin", "-y", "-i", in, "-i", srt, "-map", "0", "-map", "1:0", "-c", "copy", "-c:s", "mov_text",
		"-map_metadata", "0", "-map_chapters", "0", "-metadata:s:s:0", "title=Subtitles"}
	if l := iso639[language]; l != "" {
		args = append(args, "-metadata:s:s:0", "language="+l)
	}
	return append(args, "-movflags", "+faststart", "-progress", "pipe:1", "-nostats", "-f", "mp4", out)
}
