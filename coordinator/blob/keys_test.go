package blob

import "testing"

func TestAttemptOf(t *testing.T) {
	cases := []struct {
		key     string
		task    string
		attempt uint64
		ok      bool
	}{
		{SegmentKey("j1", "j1-r003", 2), "j1-r003", 2, true},
		{SegmentKey("j1", "j1-r003", 1<<40), "j1-r003", 1 << 40, true},
		{MontageAttemptKey("j1", 3), "j1-concat", 3, true},
		{OutputKey("j1", "montage"), "", 0, false},
		{"jobs/j1/segments/x.mp4", "", 0, false},
		{"jobs/j1/segments/x-0.mp4", "", 0, false},
		{"jobs/j1/attempts/other-1.mp4", "", 0, false},
		{"cache/abc.mp4", "", 0, false},
	}
	for _, c := range cases {
		_, task, n, ok := AttemptOf(c.key)
		if task != c.task || n != c.attempt || ok != c.ok {
			t.Errorf("AttemptOf(%q) = %q %d %v, want %q %d %v", c.key, task, n, ok, c.task, c.attempt, c.ok)
		}
	}
}
