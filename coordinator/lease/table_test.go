package lease

import (
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := NewTable(10 * time.Second)
	tb.Track("t1", "a1", 5, now)
	tb.Track("t2", "a2", 6, now.Add(4*time.Second))

	if got := tb.Expired(now.Add(10 * time.Second)); len(got) != 0 {
		t.Fatalf("expired at the deadline itself: %v", got)
	}
	// Renewal needs the holder and the current token.
	if tb.Renew("t1", "a2", 5, 0.5, now.Add(5*time.Second)) {
		t.Error("renewed by another agent")
	}
	if tb.Renew("t1", "a1", 4, 0.5, now.Add(5*time.Second)) {
		t.Error("renewed with a stale token")
	}
	if !tb.Renew("t1", "a1", 5, 0.5, now.Add(5*time.Second)) {
		t.Error("holder could not renew")
	}
	if e, _ := tb.Get("t1"); e.Progress != 0.5 || !e.Deadline.Equal(now.Add(15*time.Second)) {
		t.Errorf("after renew: %+v", e)
	}
	tb.Renew("t1", "a1", 5, 7, now.Add(5*time.Second)) // nonsense progress is ignored
	if e, _ := tb.Get("t1"); e.Progress != 0.5 {
		t.Errorf("progress %v after a bogus report", e.Progress)
	}
	got := tb.Expired(now.Add(14*time.Second + time.Millisecond))
	if len(got) != 1 || got[0].TaskID != "t2" {
		t.Fatalf("expired = %+v, want t2 only", got)
	}
	// Expired entries stay until dropped, so a failed proposal is retried.
	if len(tb.Expired(now.Add(20*time.Second))) != 2 {
		t.Error("expired entries vanished before Drop")
	}
	tb.Drop("t2")
	if _, ok := tb.Get("t2"); ok || tb.Len() != 1 {
		t.Error("drop did not remove t2")
	}
	tb.Reset([]Entry{{TaskID: "x", AgentID: "a", Token: 9, Deadline: now}})
	if _, ok := tb.Get("t1"); ok || tb.Len() != 1 {
		t.Error("reset kept old entries")
	}
}
