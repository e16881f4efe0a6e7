package media

import (
	"fmt"
	"math"
	"strings"
)

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

// MinYouTubeChapter is YouTube's shortest chapter.
const MinYouTubeChapter = 10.0

// YouTubeChapters applies YouTube's rules for chapters in a description: the
// first starts at 0:00 and each lasts at least 10 seconds. A chapter that is
// too short is merged into its neighbour (the next one; the last merges into
// the one before), titles joined with " / ". Timestamps are whole seconds, so
// starts are floored and a merge also happens when flooring would leave a
// chapter under 10 s.
func YouTubeChapters(in []Chapter) []Chapter {
	cs := append([]Chapter(nil), in...)
	if len(cs) == 0 {
		return nil
	}
	cs[0].Start = 0
	short := func(c Chapter) bool { return math.Floor(c.End)-math.Floor(c.Start) < MinYouTubeChapter }
	for len(cs) > 1 {
		i := -1
		for k, c := range cs {
			if short(c) {
				i = k
				break
			}
		}
		if i < 0 {
			break
		}
		if i == len(cs)-1 {
			cs[i-1].End = cs[i].End
			cs[i-1].Title += " / " + cs[i].Title
			cs = cs[:i]
			continue
		}
		cs[i+1].Start = cs[i].Start
		cs[i+1].Title = cs[i].Title + " / " + cs[i+1].Title
		cs = append(cs[:i], cs[i+1:]...)
	}
	return cs
}

// FormatYouTube writes chapters as lines of a video description: "0:00
// Title", with hours only when the montage needs them.
func FormatYouTube(cs []Chapter) string {
	hours := len(cs) > 0 && cs[len(cs)-1].Start >= 3600
	var b strings.Builder
	for _, c := range cs {
		s := int(math.Floor(c.Start))
		title := strings.Join(strings.Fields(c.Title), " ")
		if hours {
			fmt.Fprintf(&b, "%d:%02d:%02d %s\n", s/3600, s/60%60, s%60, title)
		} else {
			fmt.Fprintf(&b, "%d:%02d %s\n", s/60, s%60, title)
		}
	}
	return b.String()
}
