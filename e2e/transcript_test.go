package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/subtitles"
)

const openaiKey = "sk-e2e-transcripts-0123456789-secret"

// whisper is an OpenAI-compatible transcription server on loopback: it
// checks each request and answers fixed segments (or fails as told).
type whisper struct {
	t        *testing.T
	mu       sync.Mutex
	requests []map[string]string
	status   int // non-zero: answer every request with it
}

func (w *whisper) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/audio/transcriptions" || r.Header.Get("Authorization") != "Bearer "+openaiKey {
		http.Error(rw, `{"error":{"message":"no"}}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		w.t.Errorf("multipart: %v", err)
		http.Error(rw, "bad", http.StatusBadRequest)
		return
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		w.t.Errorf("no file: %v", err)
		http.Error(rw, "bad", http.StatusBadRequest)
		return
	}
	head := make([]byte, 4)
	_, _ = io.ReadFull(f, head)
	req := map[string]string{"magic": string(head)}
	for k, v := range r.MultipartForm.Value {
		req[k] = v[0]
	}
	w.mu.Lock()
	w.requests = append(w.requests, req)
	status := w.status
	w.mu.Unlock()
	if status != 0 {
		rw.WriteHeader(status)
		fmt.Fprint(rw, `{"error":{"message":"this audio cannot be transcribed","type":"invalid_request_error"}}`)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprint(rw, `{"task":"transcribe","language":"english","duration":3,"text":"hello world","segments":[`+
		`{"id":0,"start":0.25,"end":1.5,"text":" hello"},{"id":1,"start":2.0,"end":9.0,"text":" world"}]}`)
}

// submitTranscribed starts a -dev farm whose agent transcribes with w and
// submits a two-highlight job with the given subtitles.
func submitTranscribed(t *testing.T, w *whisper, subs string) (*coordinator, string) {
	t.Helper()
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	env := []string{"OPENAI_API_KEY=" + openaiKey, "OPENAI_BASE_URL=" + srv.URL + "/v1"}
	c := startCoordinatorEnv(t, env, t.TempDir(), freePort(t), "-dev")
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, transcriptSpec(subs)))
	if res.code != 0 {
		t.Fatalf("submit: %s %s", res.stdout, res.stderr)
	}
	return c, strings.TrimSpace(res.stdout)
}

func transcriptSpec(subs string) string {
	return fmt.Sprintf(`name: subtitled
profile: {resolution: 640x360, fps: 30}
transcribe: true
subtitles: %s
language: en
prompt: "Shroud, Valorant"
highlights:
  - {url: %[2]s/a.mp4, at: 2, duration: 3, title: One}
  - {url: %[2]s/a.mp4, at: 9, duration: 3, title: Two}
`, subs, mediaURL)
}

// A montage with transcribe: true comes with montage.srt and montage.vtt
// whose cues sit at each highlight's place in the montage, to the
// millisecond, and ("embed") a soft subtitle track in the MP4. The
// service got the model, format, language and prompt, as small Ogg audio;
// its key appears nowhere.
func TestTranscriptsEndToEnd(t *testing.T) {
	w := &whisper{t: t}
	c, id := submitTranscribed(t, w, "embed")
	if j := waitJobDone(t, c.url, id, 3*time.Minute); j.GetState().String() != "JOB_STATE_SUCCEEDED" {
		t.Fatalf("job %s: %s", j.GetState(), j.GetError())
	}
	if len(w.requests) != 2 {
		t.Fatalf("%d transcription requests, want one per highlight", len(w.requests))
	}
	for _, r := range w.requests {
		for k, v := range map[string]string{"model": "whisper-1", "response_format": "verbose_json", "language": "en", "prompt": "Shroud, Valorant", "magic": "OggS"} {
			if r[k] != v {
				t.Errorf("request %s = %q, want %q", k, r[k], v)
			}
		}
	}
	dir := t.TempDir()
	get := func(what string) string {
		p := filepath.Join(dir, what)
		if r := ctl(t, c.url, "download", id, "--what", what, "-o", p); r.code != 0 {
			t.Fatalf("download --what %s: %s", what, r.stderr)
		}
		return p
	}
	var man struct {
		Segments []struct {
			Role     string  `json:"role"`
			Index    int     `json:"highlight_index"`
			Offset   float64 `json:"offset_seconds"`
			Duration float64 `json:"duration_seconds"`
		} `json:"parts"`
	}
	b, err := os.ReadFile(get("manifest"))
	if err != nil || json.Unmarshal(b, &man) != nil || len(man.Segments) != 2 {
		t.Fatalf("manifest: %v %s", err, b)
	}
	msOf := func(s float64) time.Duration { return time.Duration(math.Round(s*1000)) * time.Millisecond }
	var want []subtitles.Cue
	for _, s := range man.Segments {
		off, dur := msOf(s.Offset), msOf(s.Duration)
		want = append(want, subtitles.Cue{Start: off + 250*time.Millisecond, End: off + 1500*time.Millisecond, Text: "hello"},
			subtitles.Cue{Start: off + 2*time.Second, End: off + dur, Text: "world"})
	}
	for _, what := range []string{"srt", "vtt"} {
		f, err := os.Open(get(what))
		if err != nil {
			t.Fatal(err)
		}
		var got []subtitles.Cue
		if what == "srt" {
			got, err = subtitles.ParseSRT(f)
		} else {
			got, err = subtitles.ParseVTT(f)
		}
		f.Close()
		if err != nil {
			t.Fatalf("montage.%s does not parse: %v", what, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("montage.%s cues:\n got %v\nwant %v", what, got, want)
		}
	}
	// The soft subtitle track is in the MP4.
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "s", "-show_entries", "stream=codec_name", "-of", "csv=p=0", get("montage")).Output()
	if err != nil || strings.TrimSpace(string(out)) != "mov_text" {
		t.Errorf("subtitle stream of montage.mp4: %q %v", out, err)
	}
	// The key is nowhere: logs, montagectl, metrics.
	metrics, _ := http.Get(c.url + "/metrics")
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !strings.Contains(string(mb), "montage_transcript_audio_seconds_total 6") {
		t.Errorf("transcript audio not counted:\n%s", grep(string(mb), "transcript"))
	}
	for what, s := range map[string]string{"coordinator log": c.out.String(), "montagectl get": ctl(t, c.url, "get", id, "-o", "json").stdout,
		"metrics": string(mb), "montagectl agents": ctl(t, c.url, "agents").stdout} {
		if strings.Contains(s, openaiKey) {
			t.Errorf("the API key appears in the %s", what)
		}
	}
	if out := ctl(t, c.url, "agents", "-o", "json").stdout; !regexp.MustCompile(`"transcribe_model":\s*"whisper-1"`).MatchString(out) {
		t.Errorf("montagectl agents does not say the agent transcribes:\n%s", out)
	}
}

// A transcription the service refuses leaves the montage finished with a
// warning naming the highlight, and subtitles without its cues.
func TestTranscriptFailureKeepsTheMontage(t *testing.T) {
	w := &whisper{t: t, status: http.StatusBadRequest}
	c, id := submitTranscribed(t, w, "sidecar")
	if !pollUntil(3*time.Minute, func() bool {
		j, err := tryGetJob(c.url, id)
		return err == nil && j.GetState().String() == "JOB_STATE_SUCCEEDED"
	}) {
		t.Fatalf("a montage whose transcripts failed did not finish:\n%s", ctl(t, c.url, "get", id).stdout)
	}
	get := ctl(t, c.url, "get", id).stdout
	mustContain(t, get, "transcript of highlight 0", "montagectl get")
	mustContain(t, get, "this audio cannot be transcribed", "montagectl get")
	p := filepath.Join(t.TempDir(), "m.srt")
	if r := ctl(t, c.url, "download", id, "--what", "srt", "-o", p); r.code != 0 {
		t.Fatalf("download srt: %s", r.stderr)
	}
	if b, _ := os.ReadFile(p); len(b) != 0 {
		t.Errorf("subtitles of failed transcripts: %q", b)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
