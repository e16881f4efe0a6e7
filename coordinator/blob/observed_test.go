package blob

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/clock"
)

// Every request to the backend is reported with its operation; a missing
// object is an answer, not a failure of the store.
func TestObservedReportsRequests(t *testing.T) {
	local, err := NewLocal(t.TempDir(), "http://127.0.0.1:1", clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		op     string
		failed bool
	}
	var calls []call
	s := Observed(local, func(op string, took time.Duration, err error) {
		if took < 0 {
			t.Errorf("%s took %s", op, took)
		}
		calls = append(calls, call{op, err != nil})
	})
	ctx := context.Background()
	if err := s.Put(ctx, "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, ErrMissing) {
		t.Fatalf("stat of a missing key: %v", err)
	}
	if err := s.Copy(ctx, "missing", "b"); err == nil {
		t.Fatal("copy of a missing key succeeded")
	}
	if _, err := s.PresignGet("a", time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []call{{"put", false}, {"stat", false}, {"copy", false}}
	if len(calls) != len(want) {
		t.Fatalf("reported %v, want %v (presigning is not a request)", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d: %v, want %v", i, calls[i], want[i])
		}
	}
	if _, ok := s.(SourcePresigner); ok {
		t.Error("the wrapper of a local store claims to sign S3 sources")
	}
}
