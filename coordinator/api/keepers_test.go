package api

import (
	"slices"
	"testing"
)

// The keepers index answers by job what agents said by agent: a poll's
// list replaces the agent's jobs, a completion adds one, forget drops all.
func TestKeepersIndex(t *testing.T) {
	var k keepers
	of := func(job string) []string {
		got := k.of(job)
		slices.Sort(got)
		return got
	}
	check := func(step, job string, want ...string) {
		t.Helper()
		if got := of(job); !slices.Equal(got, want) {
			t.Errorf("%s: keepers of %s = %v, want %v", step, job, got, want)
		}
	}
	k.set("a", []string{"j1", "j2"})
	k.add("b", "j1")
	check("a polls j1 j2, b completes j1", "j1", "a", "b")
	check("a polls j1 j2, b completes j1", "j2", "a")
	k.set("a", []string{"j2", "j3"})
	check("a polls j2 j3", "j1", "b")
	check("a polls j2 j3", "j3", "a")
	k.set("b", nil)
	check("b polls nothing", "j1")
	k.forget("a")
	check("a forgotten", "j2")
	check("a forgotten", "j3")
	if len(k.byAgent) != 0 || len(k.byJob) != 0 {
		t.Errorf("empty index still holds %v / %v", k.byAgent, k.byJob)
	}
	for i := range maxKeptJobs + 5 {
		k.add("c", string(rune('a'+i%26))+string(rune('0'+i/26%10))+string(rune('A'+i/260)))
	}
	if n := len(k.byAgent["c"]); n != maxKeptJobs {
		t.Errorf("an agent's completions added %d jobs, want the bound %d", n, maxKeptJobs)
	}
}
