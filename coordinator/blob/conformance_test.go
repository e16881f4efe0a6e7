package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/clock"
	"github.com/stream-montages/montage/internal/multipart"
	"github.com/stream-montages/montage/internal/s3test"
)

// fixture is one store under test and how to make its URLs expire.
type fixture struct {
	store Store
	// expire makes a URL presigned with ttl unusable: the local store moves
	// its fake clock, S3 waits for real time to pass.
	expire func(t *testing.T, url string, ttl time.Duration)
}

func localFixture(t *testing.T) fixture {
	clk := clock.NewFake(time.Now())
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	l, err := NewLocal(t.TempDir(), srv.URL, clk)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(PathPrefix, l)
	return fixture{store: l, expire: func(_ *testing.T, _ string, ttl time.Duration) { clk.Advance(ttl + time.Second) }}
}

func s3Fixture(t *testing.T) fixture {
	srv := s3test.Start(t)
	store, err := NewS3(context.Background(), S3Config{Endpoint: srv.Endpoint, Bucket: "montage-test", Region: "us-east-1",
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{store: store, expire: func(t *testing.T, url string, _ time.Duration) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusForbidden {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("presigned URL still works after its expiry")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}}
}

// TestConformance runs one suite against both stores.
func TestConformance(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) fixture{"local": localFixture, "s3": s3Fixture} {
		t.Run(name, func(t *testing.T) {
			f := mk(t)
			t.Run("PutGetRangeDelete", func(t *testing.T) { testPutGet(t, f) })
			t.Run("ScopedURLs", func(t *testing.T) { testScoped(t, f) })
			t.Run("Expiry", func(t *testing.T) { testExpiry(t, f) })
			t.Run("Multipart", func(t *testing.T) { testMultipart(t, f) })
			t.Run("Abort", func(t *testing.T) { testAbort(t, f) })
			t.Run("ChecksumMismatch", func(t *testing.T) { testMismatch(t, f) })
			t.Run("WriteOnce", func(t *testing.T) { testWriteOnce(t, f) })
			t.Run("CheckWithoutReadBack", func(t *testing.T) { testCheck(t, f) })
		})
	}
}

func req(t *testing.T, method, url string, body []byte, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	r, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.ContentLength = int64(len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func put(t *testing.T, s Store, key string, body []byte) {
	t.Helper()
	u, err := s.PresignPut(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := req(t, http.MethodPut, u, body); code != 200 {
		t.Fatalf("put %s: HTTP %d %s", key, code, b)
	}
}

func testPutGet(t *testing.T, f fixture) {
	ctx := context.Background()
	s := f.store
	key := SegmentKey("j1", "j1-r000", 1)
	body := []byte("0123456789abcdef")
	put(t, s, key, body)
	get, err := s.PresignGet(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := req(t, http.MethodGet, get, nil); code != 200 || !bytes.Equal(b, body) {
		t.Fatalf("get: %d %q", code, b)
	}
	if code, b, _ := req(t, http.MethodGet, get, nil, "Range", "bytes=4-7"); code != http.StatusPartialContent || string(b) != "4567" {
		t.Fatalf("range get: %d %q", code, b)
	}
	if n, err := s.Stat(ctx, key); err != nil || n != int64(len(body)) {
		t.Fatalf("stat: %d %v", n, err)
	}
	if err := s.Verify(ctx, key, int64(len(body)), sum(body)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	put(t, s, "jobs/j1/segments/other.mp4", []byte("x"))
	keys, err := s.List(ctx, SegmentPrefix("j1"))
	if err != nil || !slices.Equal(keys, []string{key, "jobs/j1/segments/other.mp4"}) {
		t.Fatalf("list: %v %v", keys, err)
	}
	if err := s.Copy(ctx, key, OutputKey("j1", "montage")); err != nil {
		t.Fatalf("copy: %v", err)
	}
	if err := s.Verify(ctx, OutputKey("j1", "montage"), int64(len(body)), sum(body)); err != nil {
		t.Fatalf("verify copy: %v", err)
	}
	for _, k := range []string{key, key, "jobs/j1/segments/other.mp4", OutputKey("j1", "montage")} {
		if err := s.Delete(ctx, k); err != nil { // deleting twice is fine
			t.Fatalf("delete %s: %v", k, err)
		}
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrMissing) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Verify(ctx, key, 1, sum(body)); !errors.Is(err, ErrMissing) {
		t.Fatalf("verify after delete: %v", err)
	}
	if code, _, _ := req(t, http.MethodGet, get, nil); code != http.StatusNotFound {
		t.Fatalf("get after delete: HTTP %d", code)
	}
	if keys, _ := s.List(ctx, JobPrefix("j1")); len(keys) != 0 {
		t.Fatalf("objects left: %v", keys)
	}
}

func testScoped(t *testing.T, f fixture) {
	s := f.store
	put(t, s, "jobs/s/a.mp4", []byte("secret a"))
	put(t, s, "jobs/s/b.mp4", []byte("secret b"))
	getA, _ := s.PresignGet("jobs/s/a.mp4", time.Minute)
	putA, _ := s.PresignPut("jobs/s/a.mp4", time.Minute)
	cases := []struct {
		name, method, url string
	}{
		{"GET url used for another key", http.MethodGet, strings.Replace(getA, "jobs/s/a.mp4", "jobs/s/b.mp4", 1)},
		{"PUT url used for another key", http.MethodPut, strings.Replace(putA, "jobs/s/a.mp4", "jobs/s/b.mp4", 1)},
		{"GET url used to PUT", http.MethodPut, getA},
	}
	for _, c := range cases {
		if code, _, _ := req(t, c.method, c.url, []byte("overwritten")); code/100 == 2 {
			t.Errorf("%s: HTTP %d, want a refusal", c.name, code)
		}
	}
	for key, want := range map[string]string{"jobs/s/a.mp4": "secret a", "jobs/s/b.mp4": "secret b"} {
		u, _ := s.PresignGet(key, time.Minute)
		if _, b, _ := req(t, http.MethodGet, u, nil); string(b) != want {
			t.Errorf("%s changed to %q", key, b)
		}
	}
}

func testExpiry(t *testing.T, f fixture) {
	s := f.store
	put(t, s, "jobs/e/x.mp4", []byte("x"))
	get, _ := s.PresignGet("jobs/e/x.mp4", time.Second)
	putURL, _ := s.PresignPut("jobs/e/x.mp4", time.Second)
	f.expire(t, get, time.Second)
	if code, _, _ := req(t, http.MethodGet, get, nil); code != http.StatusForbidden {
		t.Errorf("expired GET: HTTP %d, want 403", code)
	}
	if code, _, _ := req(t, http.MethodPut, putURL, []byte("late")); code != http.StatusForbidden {
		t.Errorf("expired PUT: HTTP %d, want 403", code)
	}
}

// partSize is S3's minimum for every part but the last.
const partSize = 5 << 20

func uploadParts(t *testing.T, s Store, key, id string, parts [][]byte) []Part {
	t.Helper()
	var out []Part
	for i, p := range parts {
		u, err := s.PresignPart(key, id, i+1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		code, b, hdr := req(t, http.MethodPut, u, p)
		if code != 200 {
			t.Fatalf("part %d: HTTP %d %s", i+1, code, b)
		}
		etag := strings.Trim(hdr.Get("ETag"), `"`)
		m := md5.Sum(p)
		if etag != hex.EncodeToString(m[:]) {
			t.Fatalf("part %d ETag %q is not the MD5 of its bytes", i+1, etag)
		}
		out = append(out, Part{Number: i + 1, ETag: etag})
	}
	return out
}

func testMultipart(t *testing.T, f fixture) {
	ctx := context.Background()
	s := f.store
	key := MontageAttemptKey("jm", 1)
	one := bytes.Repeat([]byte("a"), partSize)
	two := []byte("and the tail")
	id, err := s.StartMultipart(ctx, key, false)
	if err != nil {
		t.Fatal(err)
	}
	parts := uploadParts(t, s, key, id, [][]byte{one, two})
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrMissing) {
		t.Errorf("object visible before the upload completed: %v", err)
	}
	ups, err := s.ListMultipart(ctx, "jobs/jm/")
	if err != nil || len(ups) != 1 || ups[0].UploadID != id || ups[0].Key != key {
		t.Fatalf("uploads in progress: %v %v", ups, err)
	}
	// A part URL is bound to its upload and number.
	u, _ := s.PresignPart(key, id, 3, time.Minute)
	tampered := strings.Replace(u, "partNumber=3", "partNumber=4", 1)
	if tampered == u {
		tampered = strings.Replace(u, "part=3", "part=4", 1)
	}
	if tampered == u {
		t.Fatalf("part URL %s names no part number", u)
	}
	if code, _, _ := req(t, http.MethodPut, tampered, []byte("x")); code/100 == 2 {
		t.Errorf("a part URL worked for another part number")
	}
	if err := s.CompleteMultipart(ctx, key, id, parts); err != nil {
		t.Fatal(err)
	}
	all := append(append([]byte(nil), one...), two...)
	if err := s.Verify(ctx, key, int64(len(all)), sum(all)); err != nil {
		t.Fatalf("verify multipart object: %v", err)
	}
	if ups, _ := s.ListMultipart(ctx, "jobs/jm/"); len(ups) != 0 {
		t.Errorf("uploads left after completion: %v", ups)
	}
	_ = s.Delete(ctx, key)
}

func testAbort(t *testing.T, f fixture) {
	ctx := context.Background()
	s := f.store
	key := MontageAttemptKey("ja", 1)
	id, err := s.StartMultipart(ctx, key, false)
	if err != nil {
		t.Fatal(err)
	}
	parts := uploadParts(t, s, key, id, [][]byte{bytes.Repeat([]byte("b"), partSize)})
	if err := s.AbortMultipart(ctx, key, id); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortMultipart(ctx, key, id); err != nil {
		t.Errorf("second abort: %v", err)
	}
	if ups, _ := s.ListMultipart(ctx, "jobs/ja/"); len(ups) != 0 {
		t.Errorf("uploads left after abort: %v", ups)
	}
	if err := s.CompleteMultipart(ctx, key, id, parts); err == nil {
		t.Error("completed an aborted upload")
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, ErrMissing) {
		t.Errorf("aborted upload left an object: %v", err)
	}
}

func testMismatch(t *testing.T, f fixture) {
	ctx := context.Background()
	s := f.store
	body := []byte("the real bytes")
	put(t, s, "jobs/m/x.mp4", body)
	if err := s.Verify(ctx, "jobs/m/x.mp4", int64(len(body)), sum([]byte("other bytes!!!"))); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong sha256: %v, want ErrMismatch", err)
	}
	if err := s.Verify(ctx, "jobs/m/x.mp4", int64(len(body))+1, sum(body)); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong size: %v, want ErrMismatch", err)
	}
	key := MontageAttemptKey("jmm", 1)
	id, err := s.StartMultipart(ctx, key, false)
	if err != nil {
		t.Fatal(err)
	}
	parts := uploadParts(t, s, key, id, [][]byte{[]byte("only part")})
	parts[0].ETag = fmt.Sprintf("%x", md5.Sum([]byte("something else")))
	if err := s.CompleteMultipart(ctx, key, id, parts); err == nil {
		t.Error("completed with a wrong part ETag")
	}
	_ = s.AbortMultipart(ctx, key, id)
}

// Misconfiguration stops the store at start with one line naming the cause.
func TestS3BadConfiguration(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateUser(t, "plainuser", "plainuser-secret", "user")
	closed := "http://" + freeLocalAddr(t)
	cases := []struct {
		name string
		cfg  S3Config
		want string
	}{
		{"wrong secret", S3Config{Endpoint: srv.Endpoint, Bucket: "bucket-one", AccessKey: s3test.AccessKey, SecretKey: "wrong"}, "credentials refused"},
		{"wrong secret with a region", S3Config{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: "bucket-one", AccessKey: s3test.AccessKey, SecretKey: "wrong"}, "credentials refused"},
		{"unknown key", S3Config{Endpoint: srv.Endpoint, Bucket: "bucket-one", AccessKey: "nobody", SecretKey: "x"}, "credentials refused"},
		{"no permission to create the bucket", S3Config{Endpoint: srv.Endpoint, Bucket: "bucket-two", AccessKey: "plainuser", SecretKey: "plainuser-secret"}, "access denied"},
		{"unreachable endpoint", S3Config{Endpoint: closed, Bucket: "bucket-one", AccessKey: "a", SecretKey: "b"}, "cannot reach the endpoint"},
		{"no bucket", S3Config{Endpoint: srv.Endpoint, AccessKey: "a", SecretKey: "b"}, "-s3-bucket"},
	}
	for _, c := range cases {
		_, err := NewS3(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line containing %q", c.name, err, c.want)
		}
	}
}

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func TestLoadCredentials(t *testing.T) {
	t.Setenv("MONTAGE_S3_ACCESS_KEY", "")
	t.Setenv("MONTAGE_S3_SECRET_KEY", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "aws-id")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
	var c S3Config
	if err := c.LoadCredentials(""); err != nil || c.AccessKey != "aws-id" || c.SecretKey != "aws-secret" {
		t.Fatalf("from AWS_ env: %+v %v", c, err)
	}
	t.Setenv("MONTAGE_S3_ACCESS_KEY", "m-id")
	t.Setenv("MONTAGE_S3_SECRET_KEY", "m-secret")
	if err := c.LoadCredentials(""); err != nil || c.AccessKey != "m-id" {
		t.Fatalf("MONTAGE_ env wins: %+v %v", c, err)
	}
	f := t.TempDir() + "/creds"
	if err := os.WriteFile(f, []byte("# keys\nMONTAGE_S3_ACCESS_KEY=file-id\nMONTAGE_S3_SECRET_KEY = 'file-secret'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadCredentials(f); err != nil || c.AccessKey != "file-id" || c.SecretKey != "file-secret" {
		t.Fatalf("from file: %+v %v", c, err)
	}
	if err := os.WriteFile(f, []byte("MONTAGE_S3_ACCESS_KEY=only-id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadCredentials(f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("half a file: %v", err)
	}
}

// Coordinators starting together all find the bucket missing and create it;
// every one of them must start.
func TestS3ConcurrentBucketCreation(t *testing.T) {
	srv := s3test.Start(t)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := NewS3(context.Background(), S3Config{Endpoint: srv.Endpoint, Bucket: "raced-bucket", AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Errorf("start %d: %v", i, err)
		}
	}
}

// A presigned PUT with If-None-Match: * (what agents send) never replaces an
// object that exists: a replayed or late upload cannot change what the
// coordinator accepted.
func testWriteOnce(t *testing.T, f fixture) {
	key := SegmentKey("jw", "jw-r000", 7)
	u, err := f.store.PresignPut(key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := req(t, http.MethodPut, u, []byte("accepted"), "If-None-Match", "*"); code != 200 {
		t.Fatalf("first put: HTTP %d %s", code, b)
	}
	code, b, _ := req(t, http.MethodPut, u, []byte("replayed"), "If-None-Match", "*")
	if code != http.StatusPreconditionFailed {
		t.Errorf("second put with If-None-Match: HTTP %d %s, want 412", code, b)
	}
	if err := f.store.Verify(context.Background(), key, int64(len("accepted")), sum([]byte("accepted"))); err != nil {
		t.Errorf("the accepted object changed: %v", err)
	}
}

// checksumHeader is what an agent sends with a URL signed with sum.
func checksumHeader(s Store, sum string) []string {
	if !s.Checksums() {
		return nil
	}
	return []string{ChecksumHeader, B64(sum)}
}

// Uploads are proven from the store's metadata: the local store's record
// of what it wrote, S3's checksum of what arrived (single and composite).
// On S3, bytes that do not match the signed sum are refused at the PUT.
func testCheck(t *testing.T, f fixture) {
	s, ctx := f.store, context.Background()
	body := bytes.Repeat([]byte("segment "), 100)
	u, err := s.PresignPutSum("jobs/c/one.mp4", time.Minute, sum(body))
	if err != nil {
		t.Fatal(err)
	}
	if code, b, _ := req(t, http.MethodPut, u, body, checksumHeader(s, sum(body))...); code != 200 {
		t.Fatalf("checksummed PUT: HTTP %d %s", code, b)
	}
	if proven, err := s.Check(ctx, "jobs/c/one.mp4", Claim{Size: int64(len(body)), SHA256: sum(body)}); err != nil || !proven {
		t.Fatalf("check of an honest claim: proven %v, %v", proven, err)
	}
	for name, c := range map[string]Claim{
		"another sum":  {Size: int64(len(body)), SHA256: sum([]byte("x"))},
		"another size": {Size: 3, SHA256: sum(body)},
	} {
		if _, err := s.Check(ctx, "jobs/c/one.mp4", c); !errors.Is(err, ErrMismatch) {
			t.Errorf("check with %s: %v, want a mismatch", name, err)
		}
	}
	if _, err := s.Check(ctx, "jobs/c/none.mp4", Claim{Size: 1, SHA256: sum(body)}); !errors.Is(err, ErrMissing) {
		t.Errorf("check of a missing object: %v", err)
	}
	if s.Checksums() {
		u, _ := s.PresignPutSum("jobs/c/two.mp4", time.Minute, sum(body))
		damaged := append([]byte("X"), body[1:]...)
		if code, _, _ := req(t, http.MethodPut, u, damaged, checksumHeader(s, sum(body))...); code/100 == 2 {
			t.Fatal("bytes that do not match the signed sum were stored")
		}
		if _, err := s.Stat(ctx, "jobs/c/two.mp4"); !errors.Is(err, ErrMissing) {
			t.Fatalf("a refused PUT left an object: %v", err)
		}
		// A plain PUT carries no sum: nothing to prove it by.
		put(t, s, "jobs/c/plain.mp4", body)
		if proven, err := s.Check(ctx, "jobs/c/plain.mp4", Claim{Size: int64(len(body)), SHA256: sum(body)}); err != nil || proven {
			t.Errorf("check of an upload without a checksum: proven %v, %v", proven, err)
		}
	}
	// Multipart: each part signed with its own sum.
	const key = "jobs/c/attempts/montage-9.mp4"
	id, err := s.StartMultipart(ctx, key, true)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{bytes.Repeat([]byte("a"), 5<<20), []byte("the last part")}
	var done []Part
	var sums []string
	for i, p := range parts {
		u, err := s.PresignPartSum(key, id, i+1, time.Minute, sum(p))
		if err != nil {
			t.Fatal(err)
		}
		code, b, h := req(t, http.MethodPut, u, p, checksumHeader(s, sum(p))...)
		if code != 200 {
			t.Fatalf("part %d: HTTP %d %s", i+1, code, b)
		}
		done = append(done, Part{Number: i + 1, ETag: strings.Trim(h.Get("ETag"), `"`), SHA256: sum(p)})
		sums = append(sums, sum(p))
	}
	// A store that offers it lets the uploader complete the upload.
	cu, err := s.PresignComplete(key, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if cu == "" {
		if err := s.CompleteMultipart(ctx, key, id, done); err != nil {
			t.Fatal(err)
		}
	} else {
		var list []multipart.Part
		for _, p := range done {
			list = append(list, multipart.Part{Number: int32(p.Number), ETag: p.ETag, SHA256: p.SHA256})
		}
		doc, err := multipart.CompleteDocument(list)
		if err != nil {
			t.Fatal(err)
		}
		if code, b, _ := req(t, http.MethodPost, cu, doc); code != 200 || bytes.Contains(b, []byte("<Error>")) {
			t.Fatalf("completion by the uploader: HTTP %d %s", code, b)
		}
	}
	whole := sum(bytes.Join(parts, nil))
	size := int64(len(parts[0]) + len(parts[1]))
	if proven, err := s.Check(ctx, key, Claim{Size: size, SHA256: whole, Parts: sums}); err != nil || !proven {
		t.Fatalf("check of a multipart upload: proven %v, %v", proven, err)
	}
	if s.Checksums() {
		if _, err := s.Check(ctx, key, Claim{Size: size, SHA256: whole, Parts: []string{sums[1], sums[0]}}); !errors.Is(err, ErrMismatch) {
			t.Errorf("check with the parts' sums swapped: %v", err)
		}
	}
}
