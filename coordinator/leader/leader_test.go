package leader

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stream-montages/montage/internal/clock"
)

// An agent is online for a window after its last call; right after an
// election every agent is, since the new leader has heard from nobody yet.
func TestOnline(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	l := New(nil, nil, clk, Config{OnlineWindow: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cases := []struct {
		name string
		step func()
		a, b bool
	}{
		{"nobody called", func() {}, false, false},
		{"a called", func() { l.Seen("a") }, true, false},
		{"a's call is old", func() { clk.Advance(61 * time.Second) }, false, false},
		{"just elected", func() { l.mu.Lock(); l.leaderSince = clk.Now(); l.mu.Unlock() }, true, true},
		{"election is old, b called", func() { clk.Advance(2 * time.Minute); l.Seen("b") }, false, true},
		{"b forgotten", func() { l.Forget("b") }, false, false},
	}
	for _, c := range cases {
		c.step()
		if a, b := l.Online("a"), l.Online("b"); a != c.a || b != c.b {
			t.Errorf("%s: online a=%v b=%v, want %v %v", c.name, a, b, c.a, c.b)
		}
	}
	if _, ok := l.LastSeen("a"); !ok {
		t.Error("LastSeen lost a")
	}
}
