package fsm

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// jobList against a plain slice across chunk boundaries, with views taken
// along the way that must not change afterwards.
func TestJobListMatchesASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var l jobList
	var ref []*Job
	gen := uint64(1)
	type view struct {
		chunks [][]*Job
		want   []*Job
	}
	var views []view
	seq := uint64(0)
	for round := 0; round < 10000; round++ {
		switch op := rng.IntN(10); {
		case op < 6 || len(ref) == 0:
			seq += uint64(1 + rng.IntN(3))
			j := &Job{ID: "j", Seq: seq}
			l.Append(j, gen)
			ref = append(ref, j)
		case op < 8:
			i := rng.IntN(len(ref))
			c := &Job{ID: "copy", Seq: ref[i].Seq}
			l.Replace(c, gen)
			ref[i] = c
		default:
			i := rng.IntN(len(ref))
			l.Remove(ref[i], gen)
			ref = slices.Delete(ref, i, i+1)
		}
		if round%1000 == 0 {
			views = append(views, view{chunks: l.view(nil), want: slices.Clone(ref)})
			gen++
		}
	}
	if got := slices.Collect(l.All()); !slices.Equal(got, ref) || l.Len() != len(ref) {
		t.Fatalf("list holds %d jobs (Len %d), the slice %d, or a different order", len(got), l.Len(), len(ref))
	}
	back := slices.Collect(l.Backward())
	slices.Reverse(back)
	if !slices.Equal(back, ref) {
		t.Fatal("Backward is not All reversed")
	}
	if len(l.chunks) < 3 {
		t.Fatalf("only %d chunks: the test did not cross chunk boundaries", len(l.chunks))
	}
	for i, v := range views {
		var got []*Job
		for _, c := range v.chunks {
			got = append(got, c...)
		}
		if !slices.Equal(got, v.want) {
			t.Fatalf("view %d changed after it was taken", i)
		}
	}
}

// Retention removes the oldest jobs first: their chunks go when empty.
func TestJobListDropsEmptyChunks(t *testing.T) {
	var l jobList
	var jobs []*Job
	for i := 1; i <= 3*chunkSize; i++ {
		j := &Job{Seq: uint64(i)}
		jobs = append(jobs, j)
		l.Append(j, 1)
	}
	view := l.view(nil)
	for _, j := range jobs[:chunkSize+5] {
		l.Remove(j, 2)
	}
	if len(l.chunks) != 2 || l.Len() != 2*chunkSize-5 {
		t.Fatalf("%d chunks, %d jobs after removing the oldest", len(l.chunks), l.Len())
	}
	if first := slices.Collect(l.All())[0]; first != jobs[chunkSize+5] {
		t.Fatalf("oldest left is seq %d", first.Seq)
	}
	if len(view) != 3 || len(view[0]) != chunkSize || view[1][0] != jobs[chunkSize] {
		t.Fatal("a view taken before the removals changed")
	}
}
