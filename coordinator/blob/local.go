package blob

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

func (l *Local) sign(method, key string, exp int64) string {
	m := hmac.New(sha256.New, l.secret)
	fmt.Fprintf(m, "%s\n%s\n%d", method, key, exp)
	return hex.EncodeToString(m.Sum(nil))
}

func (l *Local) presign(method, key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	exp := l.clock.Now().Add(ttl).Unix()
	q := url.Values{}
	q.Set("exp", strconv.FormatInt(exp, 10))
	q.Set("sig", l.sign(method, key, exp))
	return l.base + PathPrefix + key + "?" + q.Encode(), nil
}

// PresignGet implements Store.
func (l *Local) PresignGet(key string, ttl time.Duration) (string, error) {
	return l.presign(http.MethodGet, key, ttl)
}

// PresignPut implements Store.
func (l *Local) PresignPut(key string, ttl time.Duration) (string, error) {
	return l.presign(http.MethodPut, key, ttl)
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
	exp, err := strconv.ParseInt(r.URL.Query().Get("exp"), 10, 64)
	sig := r.URL.Query().Get("sig")
	if err != nil || !hmac.Equal([]byte(sig), []byte(l.sign(method, key, exp))) {
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
	if err := l.put(key, r.Body); err != nil {
		slog.Warn("blob put failed", "key", key, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// put writes to a temporary file and renames it into place, so a reader
// never sees a partial object and a broken upload leaves nothing behind.
func (l *Local) put(key string, body io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Join(l.dir, ".tmp"), "put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, io.LimitReader(body, l.maxSize)); err != nil {
		tmp.Close()
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dst := l.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
