package clock

import (
	"path/filepath"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	start := time.Unix(100, 0)
	f := NewFake(start)
	early, late := f.After(time.Second), f.After(5*time.Second)
	now := f.After(0)
	select {
	case <-now:
	default:
		t.Error("After(0) did not fire at once")
	}
	f.Advance(2 * time.Second)
	select {
	case got := <-early:
		if !got.Equal(start.Add(2 * time.Second)) {
			t.Errorf("fired with %v", got)
		}
	default:
		t.Error("1 s timer did not fire after 2 s")
	}
	select {
	case <-late:
		t.Error("5 s timer fired after 2 s")
	default:
	}
	f.Advance(3 * time.Second)
	select {
	case <-late:
	default:
		t.Error("5 s timer did not fire after 5 s")
	}
	if !f.Now().Equal(start.Add(5 * time.Second)) {
		t.Errorf("Now = %v", f.Now())
	}
}

func TestOffsetClockFollowsItsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "offset")
	o := &Offset{Path: p}
	if d := time.Until(o.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("without a file the clock is off by %s", d)
	}
	if err := SetOffset(p, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Until(o.Now()) < 7*24*time.Hour-time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("the clock did not move a week ahead: %s", time.Until(o.Now()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
