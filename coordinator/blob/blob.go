// Package blob stores job objects (segments, montages) and hands out
// short-lived signed URLs for them, so agents never hold storage credentials.
package blob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store is object storage as the coordinator uses it.
type Store interface {
	// PresignGet returns a URL that allows one GET of key until ttl passes.
	PresignGet(key string, ttl time.Duration) (string, error)
	// PresignPut returns a URL that allows PUTs of key until ttl passes.
	PresignPut(key string, ttl time.Duration) (string, error)
	// Verify checks that key exists with the given size and SHA-256 (hex).
	Verify(ctx context.Context, key string, size int64, sha256hex string) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ErrMismatch means an object is not what its uploader said it was.
var ErrMismatch = errors.New("object does not match its checksum")

// ErrMissing means no object exists under the key.
var ErrMissing = errors.New("object is missing")

// CheckKey accepts the keys the coordinator itself makes: relative paths of
// letters, digits, '.', '_', '-' and '/', with no empty or dot segments.
func CheckKey(key string) error {
	if key == "" || len(key) > 512 {
		return fmt.Errorf("blob key %q: must be 1..512 bytes", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("blob key %q: empty or dot path segment", key)
		}
	}
	for _, r := range key {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)
		if !ok {
			return fmt.Errorf("blob key %q: character %q not allowed", key, r)
		}
	}
	return nil
}

// SegmentKey is where one attempt of a render task uploads its segment. The
// attempt in the name keeps a late upload of an abandoned attempt from ever
// overwriting the object a later attempt committed.
func SegmentKey(jobID, taskID string, attempt int) string {
	return fmt.Sprintf("jobs/%s/segments/%s-%d.mp4", jobID, taskID, attempt)
}

// MontageKey is where one attempt of a concat task uploads the montage.
func MontageKey(jobID string, attempt int) string {
	return fmt.Sprintf("jobs/%s/montage-%d.mp4", jobID, attempt)
}
