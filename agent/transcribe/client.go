package transcribe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/stream-montages/montage/agent/subtitles"
)

// ErrUnauthorized: the service refused the key. It is this agent's
// configuration, not the highlight: the agent stops offering to transcribe.
var ErrUnauthorized = errors.New("the transcription service refused the API key")

// Config says which service transcribes and how patiently.
type Config struct {
	// Key is the API key (from OPENAI_API_KEY or a key file, never a flag).
	Key string
	// BaseURL is an OpenAI-compatible server's API root (e.g.
	// http://gpu-pc:8080/v1); empty is OpenAI's.
	BaseURL string
	// Model is whisper-1 by default.
	Model      string
	HTTPClient *http.Client
	// Attempts per chunk for answers that may succeed later (429, 5xx,
	// network errors), with exponential backoff from Backoff and jitter.
	Attempts int
	Backoff  time.Duration
	// MaxChunk caps a chunk's length (0: only the upload limit does).
	MaxChunk time.Duration
}

// Client transcribes chunks of audio.
type Client struct {
	api *openai.Client
	cfg Config
}

// New makes a client.
func New(cfg Config) *Client {
	if cfg.Model == "" {
		cfg.Model = "whisper-1"
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	oc := openai.DefaultConfig(cfg.Key)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.HTTPClient != nil {
		oc.HTTPClient = cfg.HTTPClient
	}
	return &Client{api: openai.NewClientWithConfig(oc), cfg: cfg}
}

// Model is the model the client asks for.
func (c *Client) Model() string { return c.cfg.Model }

// Result is a chunk's cues, in the chunk's own time. Coarse: the model
// returned text only, timed with the chunk's span.
type Result struct {
	Cues   []subtitles.Cue
	Coarse bool
}

// textOnly reports models that answer text without segments (the gpt-4o
// transcribe family does not offer verbose_json).
func textOnly(model string) bool { return strings.HasPrefix(model, "gpt-4o") }

// Chunk transcribes one audio file lasting dur.
func (c *Client) Chunk(ctx context.Context, path string, dur time.Duration, language, prompt string) (Result, error) {
	req := openai.AudioRequest{Model: c.cfg.Model, FilePath: path, Language: language, Prompt: prompt,
		Format: openai.AudioResponseFormatVerboseJSON}
	if textOnly(c.cfg.Model) {
		req.Format = openai.AudioResponseFormatJSON
	}
	var resp openai.AudioResponse
	var err error
	for attempt := 1; ; attempt++ {
		resp, err = c.api.CreateTranscription(ctx, req)
		if err == nil {
			break
		}
		retry, classified := classify(err)
		if !retry || attempt >= c.cfg.Attempts {
			return Result{}, fmt.Errorf("transcribe %s (attempt %d): %w", filepath.Base(path), attempt, classified)
		}
		wait := c.cfg.Backoff << (attempt - 1)
		wait += time.Duration(rand.Int64N(int64(c.cfg.Backoff))) // jitter: agents do not retry in step
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	if len(resp.Segments) == 0 {
		text := strings.TrimSpace(resp.Text)
		if text == "" {
			return Result{}, nil // silence
		}
		return Result{Cues: []subtitles.Cue{{Start: 0, End: dur, Text: text}}, Coarse: true}, nil
	}
	var out Result
	for _, s := range resp.Segments {
		start, end := secs(s.Start), min(secs(s.End), dur)
		if text := strings.TrimSpace(s.Text); text != "" && end > start {
			out.Cues = append(out.Cues, subtitles.Cue{Start: start, End: end, Text: text})
		}
	}
	return out, nil
}

func secs(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// classify says whether an error may go away on its own (429, 5xx, the
// network), and turns a 401 into ErrUnauthorized. The key never appears:
// the service's message is kept, the request is not.
func classify(err error) (bool, error) {
	var api *openai.APIError
	var req *openai.RequestError
	status := 0
	switch {
	case errors.As(err, &api):
		status = api.HTTPStatusCode
	case errors.As(err, &req):
		status = req.HTTPStatusCode
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return false, fmt.Errorf("%w (HTTP %d): %v", ErrUnauthorized, status, err)
	case status == http.StatusTooManyRequests || status >= 500:
		return true, fmt.Errorf("HTTP %d: %w", status, err)
	case status == 0 && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		return true, err // the network
	}
	return false, err
}

// Shift moves a chunk's cues to the chunk's start in the highlight.
func Shift(cues []subtitles.Cue, by time.Duration) []subtitles.Cue {
	out := make([]subtitles.Cue, len(cues))
	for i, c := range cues {
		out[i] = subtitles.Cue{Start: c.Start + by, End: c.End + by, Text: c.Text}
	}
	return out
}

// KeyFromFile reads an API key from a file (the first line), so it never
// sits in a flag value that ps shows.
func KeyFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-openai-key-file: %w", err)
	}
	key, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if key == "" {
		return "", fmt.Errorf("-openai-key-file %s is empty", path)
	}
	return strings.TrimSpace(key), nil
}

// Configure makes the agent's client from its settings and the
// environment (OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL), nil when
// neither a key nor a server is given: the agent then does not transcribe.
func Configure(keyFile, baseURL, model string, hc *http.Client) (*Client, error) {
	key := strings.TrimSpace(os.Getenv("OPENAI_API_KEY"))
	if keyFile != "" {
		k, err := KeyFromFile(keyFile)
		if err != nil {
			return nil, err
		}
		key = k
	}
	if baseURL == "" {
		baseURL = strings.TrimSpace(os.Getenv("OPENAI_BASE_URL"))
	}
	if model == "" {
		model = strings.TrimSpace(os.Getenv("OPENAI_MODEL"))
	}
	if key == "" && baseURL == "" {
		return nil, nil
	}
	if baseURL != "" && !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("-openai-base-url %q: want http(s)://HOST[:PORT]/v1", baseURL)
	}
	if key == "" {
		key = "none" // a local server without keys; the header must still be sent
	}
	return New(Config{Key: key, BaseURL: baseURL, Model: model, HTTPClient: hc}), nil
}
