// Package clock lets code that depends on time be driven by tests.
package clock

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Clock is the subset of time the coordinator and agent use.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a clock that moves only when Advance is called.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake starts a fake clock at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := f.now.Add(d)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock and fires every timer that has come due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(f.now) {
			w.ch <- f.now
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

// Offset is the wall clock moved forward by a duration read from a file
// (nanoseconds, decimal; a missing or empty file is 0). Several processes
// reading one file share a clock that a test can move days ahead at once,
// while time still flows between the moves. Timers run on the wall clock.
type Offset struct {
	Path string

	mu     sync.Mutex
	read   time.Time // wall time of the last read
	offset time.Duration
}

func (o *Offset) Now() time.Time {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if now.Sub(o.read) > 10*time.Millisecond {
		o.read = now
		if b, err := os.ReadFile(o.Path); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				o.offset = time.Duration(v)
			}
		}
	}
	return now.Add(o.offset)
}

func (o *Offset) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SetOffset writes an Offset clock's file (atomically, for its readers).
func SetOffset(path string, d time.Duration) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(int64(d), 10)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
