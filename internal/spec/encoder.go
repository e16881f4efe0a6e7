package spec

import "strings"

// Encoder families. A job's encoder is one family's encoder for its codec;
// "none" is software (x264, x265, SVT-AV1).
const (
	HWAuto = "auto"
	HWNone = "none"
)

// HWFamilies are the hardware encoder families an agent can prove.
var HWFamilies = []string{"nvenc", "qsv", "vaapi", "videotoolbox", "amf"}

var softwareEncoders = map[string]string{"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}

func isFamily(f string) bool {
	for _, x := range HWFamilies {
		if x == f {
			return true
		}
	}
	return false
}

// SoftwareEncoder is the CPU encoder of a codec.
func SoftwareEncoder(codec string) string { return softwareEncoders[codec] }

// EncoderFor names the ffmpeg encoder of a family ("none" for software)
// and codec, e.g. ("nvenc", "hevc") → "hevc_nvenc".
func EncoderFor(family, codec string) string {
	if family == HWNone || family == "" {
		return SoftwareEncoder(codec)
	}
	return codec + "_" + family
}

// ParseEncoder splits an encoder name into codec and family ("none" for
// software); ok is false for names this farm does not use.
func ParseEncoder(name string) (codec, family string, ok bool) {
	for c, sw := range softwareEncoders {
		if name == sw {
			return c, HWNone, true
		}
	}
	c, f, found := strings.Cut(name, "_")
	if !found || softwareEncoders[c] == "" || !isFamily(f) {
		return "", "", false
	}
	return c, f, true
}

// EncoderFamily returns the hardware family of an encoder, or "" for software.
func EncoderFamily(name string) string {
	_, f, ok := ParseEncoder(name)
	if !ok || f == HWNone {
		return ""
	}
	return f
}
