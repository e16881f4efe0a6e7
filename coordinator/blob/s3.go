package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where the S3 store is. Credentials never come from flags:
// they come from the environment or a file (see LoadCredentials).
type S3Config struct {
	Endpoint  string // host:port, or a URL whose scheme sets TLS
	Region    string
	Bucket    string
	TLS       bool
	AccessKey string
	SecretKey string
}

// LoadCredentials fills the keys from a file of KEY=VALUE lines (when path
// is set) or else from MONTAGE_S3_ACCESS_KEY / MONTAGE_S3_SECRET_KEY, falling
// back to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
func (c *S3Config) LoadCredentials(path string) error {
	get := os.Getenv
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("S3 credentials file: %w", err)
		}
		vals := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return fmt.Errorf("S3 credentials file %s: line %q is not KEY=VALUE", path, line)
			}
			vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		get = func(k string) string { return vals[k] }
	}
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := get(k); v != "" {
				return v
			}
		}
		return ""
	}
	c.AccessKey = first("MONTAGE_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
	c.SecretKey = first("MONTAGE_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	if c.AccessKey == "" || c.SecretKey == "" {
		where := "the environment (MONTAGE_S3_ACCESS_KEY and MONTAGE_S3_SECRET_KEY)"
		if path != "" {
			where = "credentials file " + path
		}
		return fmt.Errorf("S3 credentials missing: set both keys in %s", where)
	}
	return nil
}

// S3 stores objects in one bucket of MinIO or any S3 service.
type S3 struct {
	core   *minio.Core
	bucket string
	desc   string
	// checksums: the server checks x-amz-checksum-sha256 (proven at start).
	checksums bool
	http      *http.Client // for the start-up probe's presigned PUTs
}

// NewS3 connects to the store, creates the bucket if absent, and proves it
// can write, read and delete an object there, so a misconfiguration stops the
// coordinator at start with one line that says what is wrong.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	endpoint, secure := cfg.Endpoint, cfg.TLS
	if u, err := url.Parse(cfg.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	if endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("S3 store: -s3-endpoint and -s3-bucket are both required")
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("S3 store %s: %w", endpoint, err)
	}
	// Every completion checks its object with a HEAD, hundreds at once
	// with a busy farm: keep that many connections instead of minio's 16,
	// or each check past the 16th dials anew.
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 256
	core, err := minio.NewCore(endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    secure,
		Region:    cfg.Region,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 store %s: %w", endpoint, err)
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	s := &S3{core: core, bucket: cfg.Bucket, desc: fmt.Sprintf("%s://%s/%s", scheme, endpoint, cfg.Bucket),
		http: &http.Client{Transport: tr}}
	if err := s.check(ctx, cfg.Region); err != nil {
		return nil, err
	}
	s.checksums = s.probeChecksums(ctx)
	if s.checksums {
		slog.Info("S3 store checks upload checksums: results are verified from metadata", "store", s.desc)
	} else {
		slog.Warn("S3 store ignores upload checksums: large results are verified by reading them back after their task reports", "store", s.desc)
	}
	return s, nil
}

// probeChecksums finds out whether the server checks the SHA-256 an upload
// carries: a PUT signed with a wrong sum must be refused, one with the
// right sum accepted and its sum kept. Servers that ignore checksums are
// still usable; their objects are read back instead.
func (s *S3) probeChecksums(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	key := fmt.Sprintf("montage-check/checksum-%d", time.Now().UnixNano())
	defer func() {
		_ = s.core.Client.RemoveObject(context.Background(), s.bucket, key, minio.RemoveObjectOptions{})
	}()
	body := []byte("montage checksum check")
	right := sha256.Sum256(body)
	wrong := sha256.Sum256([]byte("something else"))
	put := func(sum []byte) (int, error) {
		u, err := s.core.Client.PresignHeader(ctx, http.MethodPut, s.bucket, key, time.Minute, nil,
			http.Header{ChecksumHeader: {base64.StdEncoding.EncodeToString(sum)}})
		if err != nil {
			return 0, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set(ChecksumHeader, base64.StdEncoding.EncodeToString(sum))
		resp, err := s.http.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := put(wrong[:]); err != nil || code/100 == 2 {
		return false
	}
	if code, err := put(right[:]); err != nil || code/100 != 2 {
		return false
	}
	proven, err := s.Check(ctx, key, Claim{Size: int64(len(body)), SHA256: hex.EncodeToString(right[:])})
	return err == nil && proven
}

// Checksums implements Store.
func (s *S3) Checksums() bool { return s.checksums }

// Check implements Store: a HEAD that asks for the checksum S3 computed
// when the bytes arrived.
func (s *S3) Check(ctx context.Context, key string, c Claim) (bool, error) {
	info, err := s.core.Client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{Checksum: true})
	if isNotFound(err) {
		return false, fmt.Errorf("check %s: %w", key, ErrMissing)
	} else if err != nil {
		return false, fmt.Errorf("check %s: %w", key, err)
	}
	if info.Size != c.Size {
		return false, fmt.Errorf("check %s: stored %d bytes, reported %d: %w", key, info.Size, c.Size, ErrMismatch)
	}
	return matchStored(key, info.ChecksumSHA256, c)
}

// PresignPutSum implements Store.
func (s *S3) PresignPutSum(key string, ttl time.Duration, sum string) (string, error) {
	if !s.checksums {
		return s.PresignPut(key, ttl)
	}
	return s.presignSum(key, ttl, sum, nil)
}

// PresignPartSum implements Store.
func (s *S3) PresignPartSum(key, uploadID string, part int, ttl time.Duration, sum string) (string, error) {
	if !s.checksums {
		return s.PresignPart(key, uploadID, part, ttl)
	}
	if part < 1 || part > 10000 {
		return "", fmt.Errorf("part %d: must be 1..10000", part)
	}
	return s.presignSum(key, ttl, sum, url.Values{"partNumber": {strconv.Itoa(part)}, "uploadId": {uploadID}})
}

// presignSum signs a PUT (of a part, with q) that must carry sum.
func (s *S3) presignSum(key string, ttl time.Duration, sum string, q url.Values) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	b64 := B64(sum)
	if b64 == "" {
		return "", fmt.Errorf("presign PUT %s: sha256 %q is not 64 hex digits", key, sum)
	}
	u, err := s.core.Client.PresignHeader(context.Background(), http.MethodPut, s.bucket, key, ttl, q, http.Header{ChecksumHeader: {b64}})
	if err != nil {
		return "", fmt.Errorf("presign PUT %s: %w", key, err)
	}
	return u.String(), nil
}

// explain turns a failed start-up call into one actionable line.
func (s *S3) explain(step string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidSecretKey":
			return fmt.Errorf("S3 store %s: credentials refused (%s) on %s: check MONTAGE_S3_ACCESS_KEY and MONTAGE_S3_SECRET_KEY", s.desc, resp.Code, step)
		case "AccessDenied":
			return fmt.Errorf("S3 store %s: access denied on %s: the credentials need permission to create the bucket (or it must exist) and to put, get and delete objects in it", s.desc, step)
		}
		return fmt.Errorf("S3 store %s: %s failed: %s: %s", s.desc, step, resp.Code, resp.Message)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return fmt.Errorf("S3 store %s: cannot reach the endpoint (%v) on %s", s.desc, err, step)
	}
	return fmt.Errorf("S3 store %s: %s failed: %w", s.desc, step, err)
}

func (s *S3) check(ctx context.Context, region string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// A one-key listing rather than a HEAD: S3 answers a HEAD with a bare
	// 403 for every failure, while a GET's error body names the reason.
	ok := true
	if _, err := s.core.ListObjectsV2(s.bucket, "", "", "", "", 1); err != nil {
		var resp minio.ErrorResponse
		if !errors.As(err, &resp) || resp.Code != "NoSuchBucket" {
			return s.explain("checking the bucket", err)
		}
		ok = false
	}
	if !ok {
		if err := s.core.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region}); err != nil {
			// Coordinators starting together race to create it; the loser
			// finds it made, which is what it wanted.
			var resp minio.ErrorResponse
			if !errors.As(err, &resp) || resp.Code != "BucketAlreadyOwnedByYou" {
				return s.explain("creating the bucket", err)
			}
		}
	}
	probe := fmt.Sprintf(".montage-check/%d", time.Now().UnixNano())
	body := []byte("montage store check")
	if _, err := s.core.Client.PutObject(ctx, s.bucket, probe, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		return s.explain("writing a test object", err)
	}
	obj, err := s.core.Client.GetObject(ctx, s.bucket, probe, minio.GetObjectOptions{})
	if err != nil {
		return s.explain("reading the test object", err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		return s.explain("reading the test object", err)
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("S3 store %s: the test object read back differs from what was written", s.desc)
	}
	if err := s.core.Client.RemoveObject(ctx, s.bucket, probe, minio.RemoveObjectOptions{}); err != nil {
		return s.explain("deleting the test object", err)
	}
	return nil
}

// String names the store for logs.
func (s *S3) String() string { return s.desc }

// PresignGet implements Store.
func (s *S3) PresignGet(key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	u, err := s.core.Client.PresignedGetObject(context.Background(), s.bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("presign GET %s: %w", key, err)
	}
	return u.String(), nil
}

// PresignSource implements SourcePresigner: a GET URL for an object a job
// names as its source (s3://bucket/key), in any bucket the coordinator's
// credentials can read.
func (s *S3) PresignSource(bucket, key string, ttl time.Duration) (string, error) {
	u, err := s.core.Client.PresignedGetObject(context.Background(), bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("presign GET s3://%s/%s: %w", bucket, key, err)
	}
	return u.String(), nil
}

// PresignPut implements Store.
func (s *S3) PresignPut(key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	u, err := s.core.Client.PresignedPutObject(context.Background(), s.bucket, key, ttl)
	if err != nil {
		return "", fmt.Errorf("presign PUT %s: %w", key, err)
	}
	return u.String(), nil
}

// PresignPart implements Store.
func (s *S3) PresignPart(key, uploadID string, part int, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if part < 1 || part > 10000 {
		return "", fmt.Errorf("part %d: must be 1..10000", part)
	}
	q := url.Values{"partNumber": {strconv.Itoa(part)}, "uploadId": {uploadID}}
	u, err := s.core.Client.Presign(context.Background(), "PUT", s.bucket, key, ttl, q)
	if err != nil {
		return "", fmt.Errorf("presign part %d of %s: %w", part, key, err)
	}
	return u.String(), nil
}

func isNotFound(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && (resp.Code == "NoSuchKey" || resp.StatusCode == 404)
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (int64, error) {
	info, err := s.core.Client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return 0, fmt.Errorf("stat %s: %w", key, ErrMissing)
	} else if err != nil {
		return 0, fmt.Errorf("stat %s: %w", key, err)
	}
	return info.Size, nil
}

// Verify implements Store by a HEAD for the size and a full read for the
// SHA-256: S3 ETags of multipart objects are not content hashes.
func (s *S3) Verify(ctx context.Context, key string, size int64, sum string) error {
	n, err := s.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if n != size {
		return fmt.Errorf("verify %s: stored %d bytes, reported %d: %w", key, n, size, ErrMismatch)
	}
	obj, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil {
		return fmt.Errorf("verify %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sum) {
		return fmt.Errorf("verify %s: stored sha256 %s, reported %s: %w", key, got, sum, ErrMismatch)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, obj.Err)
		}
		out = append(out, obj.Key)
	}
	return out, nil
}

// Copy implements Store with a server-side copy (composed in parts when the
// source is over 5 GiB).
func (s *S3) Copy(ctx context.Context, src, dst string) error {
	_, err := s.core.Client.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: dst},
		minio.CopySrcOptions{Bucket: s.bucket, Object: src})
	if isNotFound(err) {
		return fmt.Errorf("copy %s: %w", src, ErrMissing)
	} else if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, body []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if _, err := s.core.Client.PutObject(ctx, s.bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.core.Client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// StartMultipart implements Store.
func (s *S3) StartMultipart(ctx context.Context, key string, checksummed bool) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	opts := minio.PutObjectOptions{ContentType: "video/mp4"}
	if s.checksums && checksummed {
		// Parts then carry their SHA-256 and the object a composite one.
		opts.UserMetadata = map[string]string{"X-Amz-Checksum-Algorithm": "SHA256"}
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, key, opts)
	if err != nil {
		return "", fmt.Errorf("start upload of %s: %w", key, err)
	}
	return id, nil
}

// CompleteMultipart implements Store.
func (s *S3) CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error {
	cp := make([]minio.CompletePart, len(parts))
	for i, p := range parts {
		cp[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag, ChecksumSHA256: B64(p.SHA256)}
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, cp, minio.PutObjectOptions{}); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && (resp.Code == "InvalidPart" || resp.Code == "InvalidPartOrder") {
			return fmt.Errorf("complete %s: %s: %w", key, resp.Message, ErrMismatch)
		}
		return fmt.Errorf("complete %s: %w", key, err)
	}
	return nil
}

// PresignComplete implements Store. Only uploads that carry checksums
// are completed by their uploader: the stored composite checksum then
// proves which parts it joined.
func (s *S3) PresignComplete(key, uploadID string, ttl time.Duration) (string, error) {
	if !s.checksums {
		return "", nil
	}
	if err := CheckKey(key); err != nil {
		return "", err
	}
	u, err := s.core.Client.Presign(context.Background(), http.MethodPost, s.bucket, key, ttl, url.Values{"uploadId": {uploadID}})
	if err != nil {
		return "", fmt.Errorf("presign completion of %s: %w", key, err)
	}
	return u.String(), nil
}

// AbortMultipart implements Store.
func (s *S3) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := s.core.AbortMultipartUpload(ctx, s.bucket, key, uploadID); err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && resp.Code == "NoSuchUpload" {
			return nil
		}
		return fmt.Errorf("abort upload of %s: %w", key, err)
	}
	return nil
}

// ListMultipart implements Store.
func (s *S3) ListMultipart(ctx context.Context, prefix string) ([]Upload, error) {
	var out []Upload
	keyMarker, idMarker := "", ""
	for {
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, prefix, keyMarker, idMarker, "", 1000)
		if err != nil {
			return nil, fmt.Errorf("list uploads under %s: %w", prefix, err)
		}
		for _, u := range res.Uploads {
			out = append(out, Upload{Key: u.Key, UploadID: u.UploadID})
		}
		if !res.IsTruncated {
			return out, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}
