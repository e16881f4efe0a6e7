package cluster

import (
	"errors"
	"testing"
)

// A new leader whose barrier fails retries it, and steps down when it keeps
// failing, instead of leading for ever without being ready.
func TestReadyAfterElection(t *testing.T) {
	cases := []struct {
		name      string
		failures  int // barriers that fail before one succeeds
		leads     bool
		wantReady bool
		wantStep  bool
		wantCalls int
	}{
		{"first barrier works", 0, true, true, false, 1},
		{"works on a retry", 2, true, true, false, 3},
		{"keeps failing: step down", 100, true, false, true, barrierAttempts},
		{"no longer leader", 100, false, false, false, 0},
	}
	for _, c := range cases {
		calls, stepped := 0, false
		ok := readyAfterElection(
			func() error {
				calls++
				if calls <= c.failures {
					return errors.New("timed out enqueuing operation")
				}
				return nil
			},
			func() bool { return c.leads },
			func() error { stepped = true; return nil },
			func(int) bool { return true })
		if ok != c.wantReady || stepped != c.wantStep || calls != c.wantCalls {
			t.Errorf("%s: ready %v, stepped down %v, %d barriers; want %v, %v, %d", c.name, ok, stepped, calls, c.wantReady, c.wantStep, c.wantCalls)
		}
	}
}
