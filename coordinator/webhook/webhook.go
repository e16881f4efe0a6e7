// Package webhook builds and signs the JSON a coordinator POSTs when a
// montage finishes or fails, and says when a failed delivery is tried
// again. The sending is the leader's (coordinator/api).
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	SignatureHeader = "X-Montage-Signature" // "sha256=" and the hex HMAC-SHA256 of the body
	EventHeader     = "X-Montage-Event"     // montage.succeeded or montage.failed
	DeliveryHeader  = "X-Montage-Delivery"  // the job id: one delivery per job
)

// Retry policy: the first retry after Base, doubling up to Max, with
// up to a fifth of jitter, for GiveUpAfter from the first attempt.
const (
	Base        = 30 * time.Second
	Max         = time.Hour
	GiveUpAfter = 24 * time.Hour
	Timeout     = 15 * time.Second // of one POST
)

// Payload is what a receiver gets.
type Payload struct {
	Event       string            `json:"event"`
	JobID       string            `json:"job_id"`
	Name        string            `json:"name"`
	State       string            `json:"state"` // succeeded or failed
	Error       string            `json:"error,omitempty"`
	Schedule    string            `json:"schedule,omitempty"`
	Slot        *time.Time        `json:"slot,omitempty"`
	Streamers   []string          `json:"streamers,omitempty"`
	Duration    float64           `json:"duration_seconds"`
	Chapters    string            `json:"chapters,omitempty"` // "0:00 Title" lines, as YouTube reads them
	Links       map[string]string `json:"links,omitempty"`
	LinksExpire *time.Time        `json:"links_expire_at,omitempty"`
	FinishedAt  time.Time         `json:"finished_at"`
}

// Chapter is a part of the montage for the chapters text.
type Chapter struct {
	Title string
	Start float64
}

// ChaptersText writes chapters as "M:SS Title" lines (H:MM:SS past an hour).
func ChaptersText(ch []Chapter) string {
	var b strings.Builder
	for _, c := range ch {
		s := int(c.Start)
		if s >= 3600 {
			fmt.Fprintf(&b, "%d:%02d:%02d %s\n", s/3600, s/60%60, s%60, c.Title)
		} else {
			fmt.Fprintf(&b, "%d:%02d %s\n", s/60, s%60, c.Title)
		}
	}
	return b.String()
}

// Sign is the signature header's value for body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body, in constant time: what
// a receiver does.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Encode is the body of a delivery.
func Encode(p Payload) ([]byte, error) { return json.Marshal(p) }

// Next is when to try again after the n-th failed attempt (n ≥ 1), given a
// jitter in [0, 1); give is true when the day of retries has passed.
func Next(first, now time.Time, n int, jitter float64) (next time.Time, give bool) {
	d := Base
	for i := 1; i < n && d < Max; i++ {
		d *= 2
	}
	d = min(d, Max)
	d += time.Duration(jitter * float64(d) / 5)
	next = now.Add(d)
	return next, next.Sub(first) > GiveUpAfter
}

// CheckURL accepts an absolute http(s) URL with a host.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be http:// or https://, got %q", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case len(raw) > 2000:
		return fmt.Errorf("is longer than 2000 bytes")
	}
	return nil
}
