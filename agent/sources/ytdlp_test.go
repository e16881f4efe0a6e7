package sources

import (
	"strings"
	"testing"
)

func TestParseJSON(t *testing.T) {
	cases := []struct {
		name, json string
		check      func(t *testing.T, r *Resolved)
		err        string
	}{
		{name: "split video and audio (YouTube DASH)", json: `{"extractor":"youtube","id":"dQw4w9WgXcQ","format_id":"136+140","duration":600,"requested_formats":[
			{"url":"https://rr1.example/v","protocol":"https","vcodec":"avc1","acodec":"none","width":1280,"height":720,"fps":30,"http_headers":{"User-Agent":"UA"}},
			{"url":"https://rr1.example/a","protocol":"https","vcodec":"none","acodec":"mp4a"}]}`,
			check: func(t *testing.T, r *Resolved) {
				if r.Video.URL != "https://rr1.example/v" || r.Audio == nil || r.Audio.URL != "https://rr1.example/a" || !r.HasAudio {
					t.Errorf("%+v", r)
				}
				if r.Video.Headers["User-Agent"] != "UA" || r.Height != 720 || r.Extractor != "youtube" || r.Identity != "yt-dlp=youtube:dQw4w9WgXcQ:136+140" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "audio listed first", json: `{"requested_formats":[{"url":"https://x/a","vcodec":"none","acodec":"opus"},{"url":"https://x/v","vcodec":"vp9","acodec":"none"}]}`,
			check: func(t *testing.T, r *Resolved) {
				if r.Video.URL != "https://x/v" || r.Audio.URL != "https://x/a" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "single HLS format (Twitch)", json: `{"extractor":"twitch:vod","url":"https://usher.example/index.m3u8","protocol":"m3u8_native","vcodec":"avc1","acodec":"mp4a"}`,
			check: func(t *testing.T, r *Resolved) {
				if !r.Video.HLS || r.Audio != nil || !r.HasAudio {
					t.Errorf("%+v", r)
				}
			}},
		{name: "generic extractor, codecs unknown", json: `{"extractor":"generic","url":"http://127.0.0.1:9/v.mp4","protocol":"http"}`,
			check: func(t *testing.T, r *Resolved) {
				if r.Video.HLS || !r.HasAudio || r.Extractor != "generic" {
					t.Errorf("%+v", r)
				}
			}},
		{name: "silent video", json: `{"url":"https://x/v.mp4","vcodec":"h264","acodec":"none"}`,
			check: func(t *testing.T, r *Resolved) {
				if r.HasAudio {
					t.Errorf("%+v", r)
				}
			}},
		{name: "file URL refused", json: `{"url":"file:///etc/passwd"}`, err: "not allowed"},
		{name: "playlist refused", json: `{"_type":"playlist","entries":[]}`, err: "playlist"},
		{name: "no URL", json: `{"extractor":"x"}`, err: "no media URL"},
		{name: "garbage", json: `not json`, err: "yt-dlp output"},
	}
	for _, c := range cases {
		r, err := ParseJSON([]byte(c.json))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		c.check(t, r)
	}
}

func TestArgs(t *testing.T) {
	got := strings.Join(Args("https://www.youtube.com/watch?v=-x", 720), " ")
	want := "-J --no-playlist --ignore-config --no-warnings --socket-timeout 20 -f bv*[height<=720]+ba/b[height<=720]/bv*+ba/b -- https://www.youtube.com/watch?v=-x"
	if got != want {
		t.Errorf("Args = %q, want %q", got, want)
	}
}
