package transcribe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/agent/subtitles"
)

const testKey = "sk-test-0123456789abcdef-secret"

// fakeOpenAI is an OpenAI-compatible transcription endpoint that checks
// what it receives and answers as told.
type fakeOpenAI struct {
	t        testing.TB
	mu       sync.Mutex
	statuses []int // answered first, one per request
	textOnly bool
	requests []map[string]string
	files    [][]byte
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/audio/transcriptions" {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		f.t.Errorf("multipart: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fields := map[string]string{}
	for k, v := range r.MultipartForm.Value {
		fields[k] = v[0]
	}
	file, hdr, err := r.FormFile("file")
	if err != nil {
		f.t.Errorf("no file part: %v", err)
		http.Error(w, "file", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(file)
	fields["filename"] = hdr.Filename
	f.mu.Lock()
	f.requests = append(f.requests, fields)
	f.files = append(f.files, body)
	status := http.StatusOK
	if len(f.statuses) > 0 {
		status, f.statuses = f.statuses[0], f.statuses[1:]
	}
	f.mu.Unlock()
	if status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"try later (%d)","type":"server_error"}}`, status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.textOnly {
		json.NewEncoder(w).Encode(map[string]any{"text": "  all the words  "})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"task": "transcribe", "language": "english", "duration": 3.5, "text": "hello world",
		"segments": []map[string]any{
			{"id": 0, "start": 0.25, "end": 1.5, "text": " hello"},
			{"id": 1, "start": 2.0, "end": 9.0, "text": " world "}, // past the chunk's end: cut
		}})
}

func serve(t *testing.T) (*fakeOpenAI, string) {
	return serveFor(t, &fakeOpenAI{t: t})
}

func serveFor(tb testing.TB, f *fakeOpenAI) (*fakeOpenAI, string) {
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	return f, srv.URL + "/v1"
}

// source makes 3 s of tone, 1 s of silence and 3 s of tone.
func source(t *testing.T) (media.Tools, string) {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is required: apt-get install -y ffmpeg")
	}
	p := filepath.Join(t.TempDir(), "src.mp4")
	out, err := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=7",
		"-f", "lavfi", "-i", "sine=frequency=440:duration=3,apad=pad_dur=1[a];sine=frequency=660:duration=3[b];[a][b]concat=n=2:v=0:a=1",
		"-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", p).CombinedOutput()
	if err != nil {
		t.Fatalf("make source: %v\n%s", err, out)
	}
	return media.Tools{FFmpeg: ff}, p
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// A highlight's audio goes out as small mono Opus with the model, format,
// language and prompt asked; the segments come back in its time.
func TestTranscribeHighlight(t *testing.T) {
	f, url := serve(t)
	ff, src := source(t)
	c := New(Config{Key: testKey, BaseURL: url, Backoff: time.Millisecond})
	h, err := c.Transcribe(context.Background(), ff, src, 1, 5, "en", "Shroud, Valorant", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(f.requests))
	}
	req := f.requests[0]
	for k, v := range map[string]string{"model": "whisper-1", "response_format": "verbose_json", "language": "en", "prompt": "Shroud, Valorant"} {
		if req[k] != v {
			t.Errorf("request %s = %q, want %q", k, req[k], v)
		}
	}
	if !strings.HasPrefix(string(f.files[0]), "OggS") || !strings.HasSuffix(req["filename"], ".ogg") {
		t.Errorf("the file sent is not Ogg: %q %q", f.files[0][:4], req["filename"])
	}
	want := []subtitles.Cue{{Start: ms(250), End: ms(1500), Text: "hello"}, {Start: ms(2000), End: ms(5000), Text: "world"}}
	if !reflect.DeepEqual(h.Cues, want) || h.Coarse {
		t.Errorf("cues %v (coarse %v), want %v", h.Cues, h.Coarse, want)
	}
	if perMin := float64(h.AudioBytes) / 1e6 / (h.AudioSeconds / 60); h.AudioSeconds != 5 || perMin > 0.3 {
		t.Errorf("%v s of audio sent, %.3f MB a minute (aim ≤ 0.3)", h.AudioSeconds, perMin)
	}
}

// A highlight longer than a chunk is cut in a silence (the one from 3 s
// to 4 s of the source), and each chunk's cues are shifted by its start.
func TestChunksCutAtSilences(t *testing.T) {
	f, url := serve(t)
	ff, src := source(t)
	c := New(Config{Key: testKey, BaseURL: url, MaxChunk: 5 * time.Second})
	h, err := c.Transcribe(context.Background(), ff, src, 0, 7, "", "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 2 {
		t.Fatalf("%d chunks sent, want 2", len(f.requests))
	}
	if len(h.Cues) != 4 {
		t.Fatalf("cues %v", h.Cues)
	}
	cut := h.Cues[2].Start - ms(250) // the second chunk's start
	if cut < ms(3000) || cut > ms(4000) {
		t.Errorf("cut at %s, want inside the silence from 3 s to 4 s", cut)
	}
	if h.Cues[1].End != cut || h.Cues[3].End != ms(7000) {
		t.Errorf("chunk ends: first chunk's last cue ends %s (cut %s), last cue %s", h.Cues[1].End, cut, h.Cues[3].End)
	}
}

// 429 and 5xx are retried; after the attempts the error names the
// service's answer; a 401 is a configuration error at once. The key never
// appears in an error.
func TestServiceErrors(t *testing.T) {
	f, url := serve(t)
	audio := filepath.Join(t.TempDir(), "a.ogg")
	if err := os.WriteFile(audio, []byte("OggS fake audio"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Key: testKey, BaseURL: url, Attempts: 3, Backoff: time.Millisecond})
	f.statuses = []int{429, 503}
	if r, err := c.Chunk(context.Background(), audio, 3*time.Second, "", ""); err != nil || len(r.Cues) != 2 || len(f.requests) != 3 {
		t.Fatalf("after a 429 and a 503: %v %v, %d requests", r, err, len(f.requests))
	}
	f.statuses = []int{500, 500, 500}
	_, err := c.Chunk(context.Background(), audio, 3*time.Second, "", "")
	if err == nil || !strings.Contains(err.Error(), "attempt 3") || !strings.Contains(err.Error(), "500") {
		t.Errorf("three 500s: %v", err)
	}
	before := len(f.requests)
	bad := New(Config{Key: "sk-wrong-key-zzz", BaseURL: url, Attempts: 3, Backoff: time.Millisecond})
	_, err = bad.Chunk(context.Background(), audio, 3*time.Second, "", "")
	if !errors.Is(err, ErrUnauthorized) || len(f.requests) != before {
		t.Errorf("a refused key: %v after %d requests, want ErrUnauthorized at once", err, len(f.requests)-before)
	}
	for _, e := range []error{err} {
		if e != nil && (strings.Contains(e.Error(), "sk-wrong-key-zzz") || strings.Contains(e.Error(), testKey)) {
			t.Errorf("the key appears in an error: %v", e)
		}
	}
}

// Text-only models get the json format, and their text spans the chunk.
func TestTextOnlyModel(t *testing.T) {
	f, url := serve(t)
	f.textOnly = true
	audio := filepath.Join(t.TempDir(), "a.ogg")
	if err := os.WriteFile(audio, []byte("OggS"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(Config{Key: testKey, BaseURL: url, Model: "gpt-4o-mini-transcribe"})
	r, err := c.Chunk(context.Background(), audio, 4200*time.Millisecond, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if f.requests[0]["response_format"] != "json" || f.requests[0]["model"] != "gpt-4o-mini-transcribe" {
		t.Errorf("request %v", f.requests[0])
	}
	if !r.Coarse || !reflect.DeepEqual(r.Cues, []subtitles.Cue{{Start: 0, End: 4200 * time.Millisecond, Text: "all the words"}}) {
		t.Errorf("coarse result %+v", r)
	}
}

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		dur, max float64
		sil      []Span
		want     []Span
	}{
		{10, 0, nil, []Span{{0, 10}}},
		{10, 20, nil, []Span{{0, 10}}},
		{10, 4, nil, []Span{{0, 4}, {4, 8}, {8, 10}}},
		{10, 4, []Span{{2.5, 3.5}, {6, 7}}, []Span{{0, 3}, {3, 6.5}, {6.5, 10}}},
		{10, 4, []Span{{0.5, 1}}, []Span{{0, 4}, {4, 8}, {8, 10}}}, // too early in the chunk to cut there
	} {
		if got := Plan(c.dur, c.max, c.sil); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Plan(%v, %v, %v) = %v, want %v", c.dur, c.max, c.sil, got, c.want)
		}
	}
}

func TestParseSilences(t *testing.T) {
	log := `[silencedetect @ 0x1] silence_start: 2.98
[silencedetect @ 0x1] silence_end: 4.01 | silence_duration: 1.03
size=  12kB time=00:00:05.00
[silencedetect @ 0x1] silence_start: 6.5`
	want := []Span{{2.98, 4.01}, {6.5, 7}}
	if got := ParseSilences(strings.NewReader(log), 7); !reflect.DeepEqual(got, want) {
		t.Errorf("silences %v, want %v", got, want)
	}
}

func TestKeyFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("  sk-abc \nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := KeyFromFile(p); err != nil || k != "sk-abc" {
		t.Errorf("key %q, %v", k, err)
	}
	if err := os.WriteFile(p, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := KeyFromFile(p); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty key file: %v", err)
	}
}
