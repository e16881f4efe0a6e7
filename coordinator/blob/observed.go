package blob

import (
	"context"
	"errors"
	"time"
)

// Observer hears of every request a store makes to its backend: the
// operation, how long it took and its error (nil on success).
type Observer func(op string, took time.Duration, err error)

// Observed wraps s so that each request to the backend is reported to
// obs. Presigning is local arithmetic and is not reported. The wrapper
// signs sources only when s does.
func Observed(s Store, obs Observer) Store {
	o := observed{s: s, obs: obs}
	if sp, ok := s.(SourcePresigner); ok {
		return observedS3{o, sp}
	}
	return o
}

type observed struct {
	s   Store
	obs Observer
}

type observedS3 struct {
	observed
	sp SourcePresigner
}

func (o observedS3) PresignSource(bucket, key string, ttl time.Duration) (string, error) {
	return o.sp.PresignSource(bucket, key, ttl)
}

// time reports a request; a missing or mismatched object is the store's
// answer, not its failure.
func (o observed) time(op string, start time.Time, err error) {
	if errors.Is(err, ErrMissing) || errors.Is(err, ErrMismatch) {
		err = nil
	}
	o.obs(op, time.Since(start), err)
}

func (o observed) PresignGet(key string, ttl time.Duration) (string, error) {
	return o.s.PresignGet(key, ttl)
}

func (o observed) PresignPut(key string, ttl time.Duration) (string, error) {
	return o.s.PresignPut(key, ttl)
}

func (o observed) Verify(ctx context.Context, key string, size int64, sha256hex string) error {
	start := time.Now()
	err := o.s.Verify(ctx, key, size, sha256hex)
	o.time("verify", start, err)
	return err
}

func (o observed) Check(ctx context.Context, key string, c Claim) (proven bool, err error) {
	start := time.Now()
	proven, err = o.s.Check(ctx, key, c)
	o.time("check", start, err)
	return proven, err
}

func (o observed) Checksums() bool { return o.s.Checksums() }

func (o observed) PresignPutSum(key string, ttl time.Duration, sum string) (string, error) {
	return o.s.PresignPutSum(key, ttl, sum)
}

func (o observed) PresignPartSum(key, uploadID string, part int, ttl time.Duration, sum string) (string, error) {
	return o.s.PresignPartSum(key, uploadID, part, ttl, sum)
}

func (o observed) Stat(ctx context.Context, key string) (int64, error) {
	start := time.Now()
	n, err := o.s.Stat(ctx, key)
	o.time("stat", start, err)
	return n, err
}

func (o observed) List(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	keys, err := o.s.List(ctx, prefix)
	o.time("list", start, err)
	return keys, err
}

func (o observed) Copy(ctx context.Context, src, dst string) error {
	start := time.Now()
	err := o.s.Copy(ctx, src, dst)
	o.time("copy", start, err)
	return err
}

func (o observed) Put(ctx context.Context, key string, body []byte) error {
	start := time.Now()
	err := o.s.Put(ctx, key, body)
	o.time("put", start, err)
	return err
}

func (o observed) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := o.s.Delete(ctx, key)
	o.time("delete", start, err)
	return err
}

func (o observed) StartMultipart(ctx context.Context, key string, checksummed bool) (string, error) {
	start := time.Now()
	id, err := o.s.StartMultipart(ctx, key, checksummed)
	o.time("start_multipart", start, err)
	return id, err
}

func (o observed) PresignPart(key, uploadID string, part int, ttl time.Duration) (string, error) {
	return o.s.PresignPart(key, uploadID, part, ttl)
}

func (o observed) CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error {
	start := time.Now()
	err := o.s.CompleteMultipart(ctx, key, uploadID, parts)
	o.time("complete_multipart", start, err)
	return err
}

func (o observed) PresignComplete(key, uploadID string, ttl time.Duration) (string, error) {
	return o.s.PresignComplete(key, uploadID, ttl)
}

func (o observed) AbortMultipart(ctx context.Context, key, uploadID string) error {
	start := time.Now()
	err := o.s.AbortMultipart(ctx, key, uploadID)
	o.time("abort_multipart", start, err)
	return err
}

func (o observed) ListMultipart(ctx context.Context, prefix string) ([]Upload, error) {
	start := time.Now()
	ups, err := o.s.ListMultipart(ctx, prefix)
	o.time("list_multipart", start, err)
	return ups, err
}
