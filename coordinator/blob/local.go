package blob

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stream-montages/montage/internal/clock"
)

// PathPrefix is where the local store's handler is mounted.
const PathPrefix = "/blob/"

// Local keeps objects in a directory and signs URLs with an HMAC key kept
// beside them, served by the coordinator's own HTTP server. URLs have the
// same shape of use as S3 presigned URLs: plain GET/PUT, expiring.
type Local struct {
	dir     string
	base    string
	secret  []byte
	clock   clock.Clock
	maxSize int64
}

// NewLocal opens (creating if needed) a local store in dir. baseURL is the
// coordinator's address as agents reach it, e.g. http://127.0.0.1:7400.
func NewLocal(dir, baseURL string, clk clock.Clock) (*Local, error) {
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("local blob store %s: %w", dir, err)
	}
	secretPath := filepath.Join(dir, ".signing-key")
	secret, err := os.ReadFile(secretPath)
	if errors.Is(err, os.ErrNotExist) {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("local blob store: signing key: %w", err)
		}
		if err := os.WriteFile(secretPath, secret, 0o600); err != nil {
			return nil, fmt.Errorf("local blob store: write signing key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("local blob store: read signing key: %w", err)
	}
	return &Local{dir: dir, base: strings.TrimRight(baseURL, "/"), secret: secret, clock: clk, maxSize: 64 << 30}, nil
}

// sign covers the method, key, expiry and, for a part, the upload and part
// number, so a URL works for exactly one of each.
func (l *Local) sign(method, key string, exp int64, upload, part string) string {
	m := hmac.New(sha256.New, l.secret)
	fmt.Fprintf(m, "%s\n%s\n%d\n%s\n%s", method, key, exp, upload, part)
	return hex.EncodeToString(m.Sum(nil))
}

func (l *Local) presign(method, key string, ttl time.Duration, upload, part string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	exp := l.clock.Now().Add(ttl).Unix()
	q := url.Values{}
	q.Set("exp", strconv.FormatInt(exp, 10))
	if upload != "" {
		q.Set("upload", upload)
		q.Set("part", part)
	}
	q.Set("sig", l.sign(method, key, exp, upload, part))
	return l.base + PathPrefix + key + "?" + q.Encode(), nil
}

// PresignGet implements Store.
func (l *Local) PresignGet(key string, ttl time.Duration) (string, error) {
	return l.presign(http.MethodGet, key, ttl, "", "")
}

// PresignPut implements Store.
func (l *Local) PresignPut(key string, ttl time.Duration) (string, error) {
	return l.presign(http.MethodPut, key, ttl, "", "")
}

// PresignPart implements Store.
func (l *Local) PresignPart(key, uploadID string, part int, ttl time.Duration) (string, error) {
	if part < 1 || part > 10000 {
		return "", fmt.Errorf("part %d: must be 1..10000", part)
	}
	if err := checkUploadID(uploadID); err != nil {
		return "", err
	}
	return l.presign(http.MethodPut, key, ttl, uploadID, strconv.Itoa(part))
}

func (l *Local) path(key string) string { return filepath.Join(l.dir, filepath.FromSlash(key)) }

// Verify implements Store by hashing the stored file.
func (l *Local) Verify(_ context.Context, key string, size int64, sum string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	f, err := os.Open(l.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("verify %s: %w", key, ErrMissing)
	} else if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	if n != size || !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), sum) {
		return fmt.Errorf("verify %s: stored %d bytes, reported %d with sha256 %s: %w", key, n, size, sum, ErrMismatch)
	}
	return nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := os.Remove(l.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	_ = os.Remove(l.sumPath(key))
	return nil
}

// ServeHTTP serves signed GET (with ranges) and PUT under PathPrefix.
func (l *Local) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, PathPrefix)
	if err := CheckKey(key); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if method != http.MethodGet && method != http.MethodPut {
		http.Error(w, "only GET, HEAD and PUT", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	upload, part := q.Get("upload"), q.Get("part")
	sig := q.Get("sig")
	if err != nil || !hmac.Equal([]byte(sig), []byte(l.sign(method, key, exp, upload, part))) {
		http.Error(w, "signature does not match this object and method", http.StatusForbidden)
		return
	}
	if l.clock.Now().Unix() > exp {
		http.Error(w, "URL expired", http.StatusForbidden)
		return
	}
	if method == http.MethodGet {
		f, err := os.Open(l.path(key))
		if err != nil {
			http.Error(w, "no such object", http.StatusNotFound)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, "stat failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", st.ModTime(), f)
		return
	}
	if upload != "" {
		etag, err := l.putPart(key, upload, part, r.Body)
		if err != nil {
			slog.Warn("blob part put failed", "key", key, "part", part, "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("ETag", `"`+etag+`"`)
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.ContentLength > l.maxSize {
		http.Error(w, fmt.Sprintf("object of %d bytes is over this store's limit of %d", r.ContentLength, l.maxSize), http.StatusRequestEntityTooLarge)
		return
	}
	if err := l.put(key, r.Body); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrExists):
			// Presigned keys are written once: a replayed or late PUT can
			// never change an object after the coordinator accepted it.
			status = http.StatusPreconditionFailed
		case errors.Is(err, ErrTooLarge):
			status = http.StatusRequestEntityTooLarge
		default:
			slog.Warn("blob put failed", "key", key, "err", err)
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Errors of a presigned PUT.
var (
	ErrExists   = errors.New("object exists and is never overwritten")
	ErrTooLarge = errors.New("object is over the store's size limit")
)

// put writes to a temporary file and links it into place: a reader never
// sees a partial object, a broken upload leaves nothing behind, and an
// object that exists is never replaced.
func (l *Local) put(key string, body io.Reader) error {
	_, err := l.write(l.path(key), body, false)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// writeAtomic writes r to dst through a synced temporary file and returns
// the MD5 of what it wrote (S3's ETag of a single-part object).
func (l *Local) writeAtomic(dst string, r io.Reader) (string, error) {
	return l.write(dst, r, true)
}

// write is writeAtomic; without replace, an existing dst is an ErrExists.
func (l *Local) write(dst string, r io.Reader, replace bool) (string, error) {
	if !replace {
		if _, err := os.Stat(dst); err == nil {
			return "", ErrExists
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, ".tmp"), "put-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h, sh := md5.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h, sh), io.LimitReader(r, l.maxSize+1))
	if err != nil {
		tmp.Close()
		return "", err
	}
	if n > l.maxSize {
		tmp.Close()
		return "", fmt.Errorf("%w (%d bytes)", ErrTooLarge, l.maxSize)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", err
	}
	if !replace {
		// link(2) fails if dst exists: no window between check and write.
		if err := os.Link(tmp.Name(), dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				return "", ErrExists
			}
			return "", err
		}
	} else if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	l.recordSum(dst, n, hex.EncodeToString(sh.Sum(nil)))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// The store hashes what it writes and keeps the sum beside the object
// (under .sums/), so Check proves an upload without reading it again.
func (l *Local) sumPath(rel string) string {
	return filepath.Join(l.dir, ".sums", filepath.FromSlash(rel)+".sum")
}

// recordSum keeps the size and SHA-256 of the object at dst; parts of
// uploads (under .uploads/) get none. A failure only costs a read-back.
func (l *Local) recordSum(dst string, n int64, sum string) {
	rel, err := filepath.Rel(l.dir, dst)
	if err != nil || strings.HasPrefix(rel, ".") {
		return
	}
	p := l.sumPath(filepath.ToSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return
	}
	tmp := p + ".tmp"
	if os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", n, sum)), 0o640) == nil {
		_ = os.Rename(tmp, p)
	}
}

// PresignComplete implements Store: the local store joins parts itself,
// on its own disk.
func (l *Local) PresignComplete(string, string, time.Duration) (string, error) { return "", nil }

// Checksums implements Store: the local store has no use for the header;
// it hashes every upload as it writes it.
func (l *Local) Checksums() bool { return false }

// PresignPutSum implements Store.
func (l *Local) PresignPutSum(key string, ttl time.Duration, _ string) (string, error) {
	return l.PresignPut(key, ttl)
}

// PresignPartSum implements Store.
func (l *Local) PresignPartSum(key, uploadID string, part int, ttl time.Duration, _ string) (string, error) {
	return l.PresignPart(key, uploadID, part, ttl)
}

// Check implements Store from the sum recorded when the object was written.
func (l *Local) Check(_ context.Context, key string, c Claim) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, err
	}
	st, err := os.Stat(l.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("check %s: %w", key, ErrMissing)
	} else if err != nil {
		return false, fmt.Errorf("check %s: %w", key, err)
	}
	b, err := os.ReadFile(l.sumPath(key))
	if err != nil {
		return false, nil // written before sums were kept: read it back
	}
	var n int64
	var sum string
	if _, err := fmt.Sscanf(string(b), "%d %s", &n, &sum); err != nil || n != st.Size() {
		return false, nil // stale or damaged record: read it back
	}
	if n != c.Size || !strings.EqualFold(sum, c.SHA256) {
		return false, fmt.Errorf("check %s: stored %d bytes with sha256 %s, reported %d with %s: %w", key, n, sum, c.Size, c.SHA256, ErrMismatch)
	}
	return true, nil
}

// Put implements Store.
func (l *Local) Put(_ context.Context, key string, body []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if _, err := l.writeAtomic(l.path(key), bytes.NewReader(body)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Stat implements Store.
func (l *Local) Stat(_ context.Context, key string) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	st, err := os.Stat(l.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("stat %s: %w", key, ErrMissing)
	} else if err != nil {
		return 0, fmt.Errorf("stat %s: %w", key, err)
	}
	return st.Size(), nil
}

// List implements Store.
func (l *Local) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(rel, ".") && rel != "." {
				return filepath.SkipDir // .tmp, .uploads
			}
			return nil
		}
		if strings.HasPrefix(rel, prefix) && CheckKey(rel) == nil {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Strings(out)
	return out, nil
}

// Copy implements Store.
func (l *Local) Copy(_ context.Context, src, dst string) error {
	if err := CheckKey(src); err != nil {
		return err
	}
	if err := CheckKey(dst); err != nil {
		return err
	}
	f, err := os.Open(l.path(src))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("copy %s: %w", src, ErrMissing)
	} else if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer f.Close()
	if _, err := l.writeAtomic(l.path(dst), f); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func checkUploadID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("upload id %q is not one of ours", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return fmt.Errorf("upload id %q is not one of ours", id)
	}
	return nil
}

func (l *Local) uploadDir(id string) string { return filepath.Join(l.dir, ".uploads", id) }

// StartMultipart implements Store: parts collect in .uploads/ID until the
// upload completes or is aborted.
func (l *Local) StartMultipart(_ context.Context, key string, _ bool) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := os.MkdirAll(l.uploadDir(id), 0o750); err != nil {
		return "", fmt.Errorf("start upload of %s: %w", key, err)
	}
	if err := os.WriteFile(filepath.Join(l.uploadDir(id), "key"), []byte(key), 0o640); err != nil {
		return "", fmt.Errorf("start upload of %s: %w", key, err)
	}
	return id, nil
}

func (l *Local) uploadKey(id string) (string, error) {
	if err := checkUploadID(id); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(l.uploadDir(id), "key"))
	if err != nil {
		return "", fmt.Errorf("upload %s: no such upload", id)
	}
	return string(b), nil
}

func (l *Local) putPart(key, id, part string, body io.Reader) (string, error) {
	owner, err := l.uploadKey(id)
	if err != nil {
		return "", err
	}
	if owner != key {
		return "", fmt.Errorf("upload %s belongs to another key", id)
	}
	n, err := strconv.Atoi(part)
	if err != nil || n < 1 || n > 10000 {
		return "", fmt.Errorf("part %q: must be 1..10000", part)
	}
	return l.writeAtomic(filepath.Join(l.uploadDir(id), fmt.Sprintf("part-%05d", n)), body)
}

// CompleteMultipart implements Store: each part must exist with the ETag
// (MD5) its upload returned; the joined object appears at once.
func (l *Local) CompleteMultipart(_ context.Context, key, id string, parts []Part) error {
	owner, err := l.uploadKey(id)
	if err != nil {
		return err
	}
	if owner != key {
		return fmt.Errorf("complete %s: upload %s belongs to %s", key, id, owner)
	}
	if len(parts) == 0 {
		return fmt.Errorf("complete %s: no parts", key)
	}
	var readers []io.Reader
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, p := range parts {
		if p.Number != i+1 {
			return fmt.Errorf("complete %s: parts must be numbered 1..%d in order", key, len(parts))
		}
		f, err := os.Open(filepath.Join(l.uploadDir(id), fmt.Sprintf("part-%05d", p.Number)))
		if err != nil {
			return fmt.Errorf("complete %s: part %d was not uploaded", key, p.Number)
		}
		files = append(files, f)
		h := md5.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("complete %s: %w", key, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != strings.Trim(p.ETag, `"`) {
			return fmt.Errorf("complete %s: part %d ETag %s: %w", key, p.Number, p.ETag, ErrMismatch)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		readers = append(readers, f)
	}
	if _, err := l.writeAtomic(l.path(key), io.MultiReader(readers...)); err != nil {
		return fmt.Errorf("complete %s: %w", key, err)
	}
	return os.RemoveAll(l.uploadDir(id))
}

// AbortMultipart implements Store.
func (l *Local) AbortMultipart(_ context.Context, key, id string) error {
	if err := checkUploadID(id); err != nil {
		return err
	}
	if err := os.RemoveAll(l.uploadDir(id)); err != nil {
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	return nil
}

// ListMultipart implements Store.
func (l *Local) ListMultipart(_ context.Context, prefix string) ([]Upload, error) {
	ents, err := os.ReadDir(filepath.Join(l.dir, ".uploads"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list uploads: %w", err)
	}
	var out []Upload
	for _, e := range ents {
		key, err := l.uploadKey(e.Name())
		if err == nil && strings.HasPrefix(key, prefix) {
			out = append(out, Upload{Key: key, UploadID: e.Name()})
		}
	}
	return out, nil
}
