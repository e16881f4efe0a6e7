// Package blob stores job objects (segments, montages) and hands out
// short-lived signed URLs for them, so agents never hold storage credentials.
package blob

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Store is object storage as the coordinator uses it. Agents never see it:
// they get presigned URLs for exactly the objects a lease needs.
type Store interface {
	// PresignGet returns a URL that allows GETs (ranges too) of key until ttl passes.
	PresignGet(key string, ttl time.Duration) (string, error)
	// PresignPut returns a URL that allows PUTs of key until ttl passes.
	PresignPut(key string, ttl time.Duration) (string, error)
	// Verify checks that key exists with the given size and SHA-256 (hex),
	// reading the object back.
	Verify(ctx context.Context, key string, size int64, sha256hex string) error
	// Check proves key is what c claims from the store's metadata alone,
	// without reading the object: proven is false when the metadata cannot
	// tell (then only Verify can), and a mismatch is an ErrMismatch.
	Check(ctx context.Context, key string, c Claim) (proven bool, err error)
	// Checksums reports whether the store checks the SHA-256 an upload
	// carries (ChecksumHeader) and refuses bytes that do not match.
	Checksums() bool
	// PresignPutSum and PresignPartSum are PresignPut and PresignPart for
	// exactly the bytes whose SHA-256 (hex) is sum: the PUT must carry it
	// in ChecksumHeader. A store without Checksums ignores sum.
	PresignPutSum(key string, ttl time.Duration, sum string) (string, error)
	PresignPartSum(key, uploadID string, part int, ttl time.Duration, sum string) (string, error)
	// Stat returns the size of key, or ErrMissing.
	Stat(ctx context.Context, key string) (int64, error)
	// List returns the keys under prefix.
	List(ctx context.Context, prefix string) ([]string, error)
	// Copy copies src to dst inside the store (any size).
	Copy(ctx context.Context, src, dst string) error
	// Put writes a small object the coordinator itself makes.
	Put(ctx context.Context, key string, body []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// StartMultipart begins a multipart upload of key; with checksummed,
	// every part must come with its SHA-256 (PresignPartSum).
	StartMultipart(ctx context.Context, key string, checksummed bool) (uploadID string, err error)
	// PresignPart returns a URL that allows PUT of one part (numbered from 1).
	// The response's ETag header names the part for CompleteMultipart.
	PresignPart(key, uploadID string, part int, ttl time.Duration) (string, error)
	// CompleteMultipart joins the parts into key; nothing is visible before.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error
	// PresignComplete returns a URL that lets the uploader complete the
	// upload itself (POST of S3's CompleteMultipartUpload document), or ""
	// when the store does not offer one: joining the parts can take a
	// while (a posix S3 server copies them), and belongs to the upload,
	// not to the coordinator's call that checks it.
	PresignComplete(key, uploadID string, ttl time.Duration) (string, error)
	// AbortMultipart discards an upload and its parts.
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// ListMultipart lists unfinished uploads under prefix.
	ListMultipart(ctx context.Context, prefix string) ([]Upload, error)
}

// SourcePresigner is a store that can sign GETs of objects a job names as
// sources (s3://bucket/key). Only the S3 store is one: the local store has
// no buckets.
type SourcePresigner interface {
	PresignSource(bucket, key string, ttl time.Duration) (string, error)
}

// Part is one uploaded part of a multipart upload, with its SHA-256 (hex)
// when it was uploaded with one.
type Part struct {
	Number int
	ETag   string
	SHA256 string
}

// Upload is an unfinished multipart upload.
type Upload struct {
	Key      string
	UploadID string
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
		if seg == "" || strings.HasPrefix(seg, ".") {
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

// SegmentKey is where one grant of a render task uploads its segment. The
// grant's lease token (its raft index) is in the name: no two grants ever
// share a key, so a late or replayed upload of an abandoned attempt can
// never overwrite the object a later one committed, not even after a
// handback.
func SegmentKey(jobID, taskID string, grant uint64) string {
	return fmt.Sprintf("jobs/%s/segments/%s-%d.mp4", jobID, taskID, grant)
}

// MontageAttemptKey is where one grant of a concat task uploads the
// montage. After the completion commits, the coordinator copies it to
// OutputKey(job, "montage") and deletes it.
func MontageAttemptKey(jobID string, grant uint64) string {
	return fmt.Sprintf("jobs/%s/attempts/montage-%d.mp4", jobID, grant)
}

// OutputAttemptKey is where one grant of a concat task uploads a further
// output (chapters, thumbnail, manifest) before finalize copies it to its
// stable key.
func OutputAttemptKey(jobID, name string, grant uint64) string {
	file := Outputs[name]
	ext := path.Ext(file)
	return fmt.Sprintf("jobs/%s/attempts/%s-%d%s", jobID, strings.TrimSuffix(file, ext), grant, ext)
}

// ConcatInputsKey is where one grant of a concat finds the list of its
// inputs when they are too many to send in the lease.
func ConcatInputsKey(jobID string, grant uint64) string {
	return fmt.Sprintf("jobs/%s/attempts/concat-inputs-%d.pb", jobID, grant)
}

// JobPrefix holds every object of a job.
func JobPrefix(jobID string) string { return "jobs/" + jobID + "/" }

// SegmentPrefix holds a job's segments (all attempts).
func SegmentPrefix(jobID string) string { return "jobs/" + jobID + "/segments/" }

// Outputs maps output names to their stable file names under the job.
var Outputs = map[string]string{
	"montage":   "montage.mp4",
	"srt":       "montage.srt",
	"vtt":       "montage.vtt",
	"chapters":  "chapters.txt",
	"thumbnail": "thumbnail.jpg",
	"manifest":  "manifest.json",
}

// OutputKey is the stable key of a finished job's output.
func OutputKey(jobID, name string) string { return JobPrefix(jobID) + Outputs[name] }

// CacheKey is where the segment cache keeps a render by content key.
func CacheKey(contentKey string) string { return "cache/" + contentKey + ".mp4" }

// AttemptOf reads the task id and grant (lease token) back from an attempt
// key (a segment or a montage attempt), so orphaned uploads can be matched
// with the leases that made them. ok is false for any other key.
func AttemptOf(key string) (jobID, taskID string, grant uint64, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "jobs" {
		return "", "", 0, false
	}
	jobID = parts[1]
	name := strings.TrimSuffix(parts[3], ".mp4")
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || name == parts[3] {
		return "", "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil || n == 0 {
		return "", "", 0, false
	}
	switch {
	case parts[2] == "segments":
		return jobID, name[:i], n, true
	case parts[2] == "attempts" && name[:i] == "montage":
		return jobID, jobID + "-concat", n, true
	}
	return "", "", 0, false
}
