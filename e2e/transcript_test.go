package e2e

import (
	"context"
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
	"github.com/stream-montages/montage/internal/testmedia"
)

const openaiKey = "sk-e2e-transcripts-0123456789-secret"

// whisper is an OpenAI-compatible transcription server on loopback: it
// checks each request and answers fixed segments (or fails as told).
type whisper struct {
	t        testing.TB
	mu       sync.Mutex
	requests []map[string]string
	status   int // non-zero: answer every request with it
	// statuses are answered first, one per request, before normal service.
	statuses []int
	segments string // verbose_json segments; empty: "hello" and "world"
	refused  int    // requests answered 401 (a wrong key or path)
	// delay is the service's time to answer, as a hosted model takes.
	delay time.Duration
}

func (w *whisper) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/audio/transcriptions" || r.Header.Get("Authorization") != "Bearer "+openaiKey {
		w.mu.Lock()
		w.refused++
		w.mu.Unlock()
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
	if len(w.statuses) > 0 {
		status, w.statuses = w.statuses[0], w.statuses[1:]
	}
	segments := w.segments
	w.mu.Unlock()
	time.Sleep(w.delay)
	if segments == "" {
		segments = `{"id":0,"start":0.25,"end":1.5,"text":" hello"},{"id":1,"start":2.0,"end":9.0,"text":" world"}`
	}
	if status != 0 {
		rw.WriteHeader(status)
		fmt.Fprint(rw, `{"error":{"message":"this audio cannot be transcribed","type":"invalid_request_error"}}`)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	if req["response_format"] == "json" { // what the json format holds: text only
		fmt.Fprint(rw, `{"text":"hello world"}`)
		return
	}
	fmt.Fprint(rw, `{"task":"transcribe","language":"english","duration":3,"text":"hello world","segments":[`+segments+`]}`)
}

// submitTranscribed starts a -dev farm whose agent transcribes with w and
// submits a two-highlight job with the given subtitles.
func submitTranscribed(t *testing.T, w *whisper, subs string) (*coordinator, string) {
	t.Helper()
	return submitSpecTranscribed(t, w, transcriptSpec(subs))
}

// submitSpecTranscribed is submitTranscribed with a spec of its own; more
// environment (a wrong key, another model) overrides the defaults.
func submitSpecTranscribed(t *testing.T, w *whisper, spec string, more ...string) (*coordinator, string) {
	t.Helper()
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	env := append([]string{"OPENAI_API_KEY=" + openaiKey, "OPENAI_BASE_URL=" + srv.URL + "/v1"}, more...)
	c := startCoordinatorEnv(t, env, t.TempDir(), freePort(t), "-dev")
	res := ctl(t, c.url, "submit", "-q", writeSpec(t, spec))
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
	getOut := ctl(t, c.url, "get", id).stdout
	mustContain(t, getOut, "Audio:    6.0 s (0.10 min) sent for transcription", "montagectl get")
	mustContain(t, getOut, "Also:     srt, vtt, chapters, thumbnail, manifest", "montagectl get")
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
	mustContain(t, get, "transcript of highlight 1", "montagectl get")
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

// subtitles: burn draws each highlight's transcript into the picture in
// the render's single encode, chunks included: the words show in frames at
// their cues' times in the montage and not in frames between them. The
// service's 429 and 500 on the way are retried; the sidecar files come too.
func TestBurnedSubtitles(t *testing.T) {
	if err := testmedia.Generate(context.Background(), mediaDir, testmedia.Source{Name: "flat-burn.mp4", Width: 640, Height: 360,
		FPS: "25", SampleRate: 48000, Channels: 2, Seconds: 26, Flat: true}); err != nil {
		t.Fatal(err)
	}
	// Highlight 0 lasts 20 s in two 10-s chunks: its second cue lies in the
	// second chunk. Highlight 1 (4 s) follows it in the montage at 20 s.
	w := &whisper{t: t, statuses: []int{http.StatusTooManyRequests, http.StatusInternalServerError},
		segments: `{"id":0,"start":0.5,"end":1.5,"text":" WELL PLAYED"},{"id":1,"start":12.0,"end":13.5,"text":" CLUTCH"}`}
	c, id := submitSpecTranscribed(t, w, fmt.Sprintf(`name: burned
profile: {resolution: 640x360, fps: 25, fade: 0}
chunk_seconds: 10
transcribe: true
subtitles: burn
highlights:
  - {url: %[1]s/flat-burn.mp4, at: 2, duration: 20}
  - {url: %[1]s/flat-burn.mp4, at: 4, duration: 4}
`, mediaURL))
	if j := waitJobDone(t, c.url, id, 4*time.Minute); j.GetState().String() != "JOB_STATE_SUCCEEDED" {
		t.Fatalf("job %s: %s\n%s", j.GetState(), j.GetError(), ctl(t, c.url, "get", id).stdout)
	}
	mustContain(t, ctl(t, c.url, "agents").stdout, "+burns-subtitles", "montagectl agents")
	if n := len(w.requests); n != 4 {
		t.Errorf("%d transcription requests, want 4 (a 429 and a 500 retried, then one per highlight)", n)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "m.mp4")
	if r := ctl(t, c.url, "download", id, "-o", p); r.code != 0 {
		t.Fatalf("download: %s", r.stderr)
	}
	ctx := context.Background()
	for _, f := range []struct {
		at   float64
		text bool
	}{{1.0, true}, {5.0, false}, {12.7, true}, {16.0, false}, {21.0, true}, {23.0, false}} {
		n, err := testmedia.BrightPixels(ctx, p, f.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := n >= 50; got != f.text || !f.text && n != 0 {
			t.Errorf("at %.1fs of the montage: %d bright pixels in the bottom third; want text: %v", f.at, n, f.text)
		}
	}
	s := filepath.Join(dir, "m.srt")
	if r := ctl(t, c.url, "download", id, "--what", "srt", "-o", s); r.code != 0 {
		t.Fatalf("download srt: %s", r.stderr)
	}
	b, _ := os.ReadFile(s)
	for _, line := range []string{"00:00:00,500 --> 00:00:01,500", "00:00:12,000 --> 00:00:13,500", "00:00:20,500 --> 00:00:21,500"} {
		mustContain(t, string(b), line, "montage.srt")
	}
}

// With subtitles: burn the transcripts are needed: one the service refuses
// fails the job with the service's own words, and no montage is made
// without its subtitles.
func TestBurnFailsWithTheServiceError(t *testing.T) {
	w := &whisper{t: t, status: http.StatusBadRequest}
	c, id := submitTranscribed(t, w, "burn")
	j := waitJobDone(t, c.url, id, 3*time.Minute)
	if j.GetState().String() != "JOB_STATE_FAILED" || !strings.Contains(j.GetError(), "this audio cannot be transcribed") {
		t.Fatalf("job %s: %q, want failed with the service's error", j.GetState(), j.GetError())
	}
	var renders int
	for _, tk := range j.GetTasks() {
		if tk.GetType().String() == "TASK_TYPE_RENDER" && tk.GetState().String() == "TASK_STATE_SUCCEEDED" {
			renders++
		}
	}
	if renders != 0 {
		t.Errorf("%d highlights rendered without their subtitles", renders)
	}
}

// A key the service refuses (401) is a configuration error of the agent,
// not of the highlight: it is asked once, never retried, and the agent stops
// offering transcription; the job says what it waits for.
func TestRefusedKeySwitchesTranscriptionOff(t *testing.T) {
	w := &whisper{t: t}
	c, id := submitSpecTranscribed(t, w, transcriptSpec("sidecar"), "OPENAI_API_KEY=sk-wrong-key-e2e")
	if !pollUntil(2*time.Minute, func() bool {
		return strings.Contains(ctl(t, c.url, "get", id).stdout, "waiting for an agent that transcribes")
	}) {
		t.Fatalf("the job does not say it waits for a transcriber:\n%s\n%s", ctl(t, c.url, "get", id).stdout, c.out.String())
	}
	if out := ctl(t, c.url, "agents", "-o", "json").stdout; strings.Contains(out, "transcribe_model") {
		t.Errorf("the agent still offers transcription after a 401:\n%s", out)
	}
	mustContain(t, c.out.String(), "the service refused its key", "the agent's log")
	if strings.Contains(c.out.String(), "sk-wrong-key-e2e") {
		t.Error("the refused key appears in the log")
	}
	w.mu.Lock()
	n := w.refused
	w.mu.Unlock()
	if n != 1 {
		t.Errorf("the service refused the key %d times; want once (a 401 is never retried)", n)
	}
}

// A model that answers text without times (the gpt-4o transcribe family)
// still gives subtitles, spanning the audio, and the job says their timing
// is coarse.
func TestTextOnlyModelWarnsOfCoarseTiming(t *testing.T) {
	w := &whisper{t: t}
	c, id := submitSpecTranscribed(t, w, transcriptSpec("sidecar"), "OPENAI_MODEL=gpt-4o-mini-transcribe")
	if j := waitJobDone(t, c.url, id, 3*time.Minute); j.GetState().String() != "JOB_STATE_SUCCEEDED" {
		t.Fatalf("job %s: %s", j.GetState(), j.GetError())
	}
	for _, r := range w.requests {
		if r["model"] != "gpt-4o-mini-transcribe" || r["response_format"] != "json" {
			t.Errorf("request %v, want the model and the json format", r)
		}
	}
	get := ctl(t, c.url, "get", id).stdout
	if n := strings.Count(get, "timing is coarse"); n != 2 {
		t.Errorf("%d coarse-timing warnings, want one per highlight:\n%s", n, get)
	}
	p := filepath.Join(t.TempDir(), "m.srt")
	if r := ctl(t, c.url, "download", id, "--what", "srt", "-o", p); r.code != 0 {
		t.Fatalf("download srt: %s", r.stderr)
	}
	b, _ := os.ReadFile(p)
	if strings.Count(string(b), "hello world") != 2 {
		t.Errorf("coarse subtitles:\n%s", b)
	}
}
