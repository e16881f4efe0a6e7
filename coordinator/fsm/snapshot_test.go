package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protodelim"

	statev1 "github.com/stream-montages/montage/proto/montage/state/v1"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/snapshot-v2.bin from the history")

func snapBytes(t *testing.T, s *State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// asJSON renders the records for a readable comparison.
func asJSON(s *State) string {
	b, _ := json.MarshalIndent(map[string]any{"jobs": s.Jobs, "tasks": s.Tasks, "agents": s.Agents,
		"cache": s.Cache, "latest": s.CacheLatest, "idem": s.Idempotency, "applied": s.AppliedIndex}, "", " ")
	return string(b)
}

func sameState(t *testing.T, what string, got, want *State) {
	t.Helper()
	if g, w := asJSON(got), asJSON(want); g != w {
		t.Fatalf("%s: states differ\n got: %.3000s\nwant: %.3000s", what, g, w)
	}
	checkIndex(t, got)
}

// checkIndex compares the maintained indexes with ones built afresh.
func checkIndex(t *testing.T, s *State) {
	t.Helper()
	fresh := &State{Jobs: s.Jobs, Tasks: s.Tasks, Cache: s.Cache}
	fresh.Reindex()
	got, want := s.ix, fresh.ix
	gotOrder, wantOrder := slices.Collect(got.order.All()), slices.Collect(want.order.All())
	for i, j := range gotOrder {
		if s.Jobs[j.ID] != j {
			t.Fatalf("order[%d] holds a stale copy of job %s", i, j.ID)
		}
	}
	if got.order.Len() != len(gotOrder) {
		t.Fatalf("order counts %d jobs and holds %d", got.order.Len(), len(gotOrder))
	}
	for _, c := range got.order.chunks {
		if len(c.jobs) == 0 || len(c.jobs) > chunkSize {
			t.Fatalf("order has a chunk of %d jobs", len(c.jobs))
		}
	}
	for name, pair := range map[string][2]any{
		"order": {gotOrder, wantOrder}, "live": {got.live, want.live}, "runnable": {got.runnable, want.runnable},
		"leased": {got.leased, want.leased}, "verify": {got.verify, want.verify}, "dependents": {got.dependents, want.dependents}, "tidy": {got.tidy, want.tidy}, "finished": {got.finished, want.finished},
	} {
		a, b := pair[0], pair[1]
		if reflect.ValueOf(a).Len() == 0 && reflect.ValueOf(b).Len() == 0 {
			continue
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("index %s drifted from the records:\n got %v\nwant %v", name, a, b)
		}
	}
	if gn, gb := s.CacheSize(); gn != len(s.Cache) || func() bool {
		var b int64
		for _, e := range s.Cache {
			b += e.Size
		}
		return b != gb
	}() {
		t.Fatalf("cache totals drifted: %d entries counted, %d held", gn, len(s.Cache))
	}
	if g, w := s.Counts(), fresh.Counts(); !reflect.DeepEqual(g, w) {
		t.Fatalf("counts drifted from the records:\n got %v\nwant %v", g, w)
	}
	scan := Counts{Jobs: map[montagev1.JobState]int{}, Tasks: map[TaskClass]int{}}
	for _, j := range s.Jobs {
		scan.Jobs[j.State]++
	}
	for _, tk := range s.Tasks {
		scan.Tasks[TaskClass{tk.Type, tk.State}]++
	}
	if g := s.Counts(); !reflect.DeepEqual(g, scan) {
		t.Fatalf("counts differ from a scan:\n got %v\nwant %v", g, scan)
	}
	for k, id := range s.Idempotency {
		if fresh.Idempotency[k] != id {
			t.Fatalf("idempotency %s → %s, records say %s", k, id, fresh.Idempotency[k])
		}
	}
	if len(s.Idempotency) != len(fresh.Idempotency) {
		t.Fatalf("idempotency has %d keys, records %d", len(s.Idempotency), len(fresh.Idempotency))
	}
}

// The snapshot format of release 0.x (JSON) restores, migrated, to the
// state the same log gives today.
func TestGoldenV1SnapshotRestores(t *testing.T) {
	f, err := os.Open("testdata/snapshot-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Restore(f)
	if err != nil {
		t.Fatal(err)
	}
	want := buildHistory()
	want.Catalog = map[string]*Montage{} // newer than this format: it restores empty
	countedFromZero(want)
	sameState(t, "v1 golden", got, want)
	if j := got.Jobs["job0"]; j.Summary == nil || j.Summary.Tasks != 3 || len(j.TaskIDs) != 0 || got.Tasks["job0-r0"] != nil {
		t.Fatalf("purged job0 was not compacted: %+v", j)
	}
	if got.Idempotency["key-job3"] != "job3" || got.Jobs["job6"].State != montagev1.JobState_JOB_STATE_QUEUED {
		t.Fatal("idempotency or queued job lost")
	}
	if !bytes.Equal(snapBytes(t, got), snapBytes(t, want)) {
		t.Fatal("a migrated state does not snapshot to the same bytes as the same log applied")
	}
}

// The current format restores byte for byte; the committed golden copy
// catches a change that would strand existing snapshots.
func TestGoldenV2SnapshotRestores(t *testing.T) {
	want := buildHistory()
	b := snapBytes(t, want)
	if *update {
		if err := os.WriteFile("testdata/snapshot-v2.bin", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile("testdata/snapshot-v2.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Restore(bytes.NewReader(golden))
	if err != nil {
		t.Fatal(err)
	}
	if !*update {
		// The committed copy predates the catalog, which restores empty.
		want.Catalog = map[string]*Montage{}
		countedFromZero(want)
		b = snapBytes(t, want)
	}
	sameState(t, "v2 golden", got, want)
	if !bytes.Equal(snapBytes(t, got), b) {
		t.Fatal("restore then snapshot changed the bytes")
	}
}

// countedFromZero words want's messages as the golden copies recorded
// them, before messages counted highlights from 1: a message is data, the
// format is what these tests guard.
func countedFromZero(want *State) {
	for _, j := range want.Jobs {
		j.Error = strings.ReplaceAll(j.Error, "render of highlight 1 (task", "render of highlight 0 (task")
	}
}

func TestSnapshotRefusesTruncatedAndNewer(t *testing.T) {
	b := snapBytes(t, buildHistory())
	for _, n := range []int{len(snapshotMagic), len(b) / 2, len(b) - 3} {
		if _, err := Restore(bytes.NewReader(b[:n])); err == nil {
			t.Errorf("a snapshot cut at %d of %d bytes restored", n, len(b))
		}
	}
	if _, err := Restore(strings.NewReader("garbage")); err == nil {
		t.Error("garbage restored")
	}
	s := New()
	s.AppliedIndex = 9
	var buf bytes.Buffer
	f := s.Freeze()
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	restored, err := Restore(bytes.NewReader(buf.Bytes()))
	if err != nil || restored.AppliedIndex != 9 {
		t.Fatalf("empty state: %v", err)
	}
	hacked := writeWithVersion(t, SnapshotVersion+1)
	if _, err := Restore(bytes.NewReader(hacked)); !errors.Is(err, ErrSnapshotVersion) {
		t.Fatalf("newer version: %v", err)
	}
}

// fill sets every settable field of v to a non-zero value.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(int64(*n)*1000, 7).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	}
}

// Every exported field of every record survives a snapshot: a field added
// to a record but not to the snapshot messages fails here.
func TestSnapshotKeepsEveryField(t *testing.T) {
	n := 0
	var j Job
	var tk Task
	var a Agent
	var e CacheEntry
	for _, v := range []any{&j, &tk, &a, &e} {
		fill(reflect.ValueOf(v).Elem(), &n)
	}
	j.State = montagev1.JobState_JOB_STATE_RUNNING // live, so its task is kept
	tk.JobID = j.ID
	j.TaskIDs = []string{tk.ID}
	s := New()
	s.Jobs[j.ID], s.Tasks[tk.ID], s.Agents[a.ID], s.Cache[e.Key] = &j, &tk, &a, &e
	s.CacheLatest["p"] = e.Key
	s.Reindex()
	got, err := Restore(bytes.NewReader(snapBytes(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]any{
		"job": {&j, got.Jobs[j.ID]}, "task": {&tk, got.Tasks[tk.ID]}, "agent": {&a, got.Agents[a.ID]}, "cache": {&e, got.Cache[e.Key]},
	} {
		w, g := reflect.ValueOf(pair[0]).Elem(), reflect.ValueOf(pair[1]).Elem()
		for i := 0; i < w.NumField(); i++ {
			f := w.Type().Field(i)
			if f.IsExported() && !reflect.DeepEqual(w.Field(i).Interface(), g.Field(i).Interface()) {
				t.Errorf("%s.%s: wrote %v, restored %v", name, f.Name, w.Field(i).Interface(), g.Field(i).Interface())
			}
		}
	}
}

// randomLog applies n random commands (every kind) to s, through l.
func randomLog(l *historyLog, rng *rand.Rand, n int) {
	agents := []string{"a1", "a2", "a3"}
	for _, id := range agents {
		l.apply(&Command{Register: &RegisterCmd{Agent: &Agent{ID: id, Slots: 2}}})
	}
	jobs := 0
	tokens := map[string]uint64{}
	taskIDs := func() []string {
		var out []string
		for id := range l.s.Tasks {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	for i := 0; i < n; i++ {
		ids := taskIDs()
		pickTask := func() string {
			if len(ids) == 0 {
				return "none"
			}
			return ids[rng.IntN(len(ids))]
		}
		var jobID string
		if jobs > 0 {
			jobID = fmt.Sprintf("j%d", rng.IntN(jobs))
		}
		ag := agents[rng.IntN(len(agents))]
		switch rng.IntN(13) {
		case 0, 1:
			c := job(fmt.Sprintf("j%d", jobs), 1+rng.IntN(3), 1+rng.IntN(3))
			c.Job.Priority = int32(rng.IntN(3))
			c.IdempotencyKey = fmt.Sprintf("k%d", jobs)
			jobs++
			l.apply(&Command{Submit: c})
		case 2, 3, 4:
			id := pickTask()
			if r := l.apply(&Command{Grant: &GrantCmd{TaskID: id, AgentID: ag}}); r.Err == nil {
				tokens[id] = r.Token
			}
		case 5, 6:
			id := pickTask()
			if t := l.s.Tasks[id]; t != nil {
				l.apply(&Command{Complete: &CompleteCmd{TaskID: id, AgentID: t.AgentID, Token: tokens[id], Result: Result{Key: id}, Verify: rng.IntN(3) == 0}})
			}
		case 7:
			id := pickTask()
			if t := l.s.Tasks[id]; t != nil {
				l.apply(&Command{Fail: &FailCmd{TaskID: id, AgentID: t.AgentID, Token: tokens[id], Error: "x", Handback: rng.IntN(2) == 0}})
			}
		case 8:
			id := pickTask()
			l.apply(&Command{Expire: &ExpireCmd{TaskID: id, Token: tokens[id]}})
		case 9:
			l.apply(&Command{Cancel: &CancelCmd{JobID: jobID}})
		case 10:
			l.apply(&Command{Finalize: &FinalizeCmd{JobID: jobID, Outputs: map[string]string{"montage": "m"}}})
			l.apply(&Command{PurgeSegments: &JobCmd{JobID: jobID}})
		case 12:
			id := pickTask()
			l.apply(&Command{Verified: &VerifiedCmd{TaskID: id, Token: tokens[id], OK: rng.IntN(2) == 0, Error: "bad"}})
		case 11:
			l.apply(&Command{MarkDeleting: &JobCmd{JobID: jobID}})
			if rng.IntN(2) == 0 {
				l.apply(&Command{RemoveJob: &JobCmd{JobID: jobID}})
			}
			l.apply(&Command{AgentState: &AgentStateCmd{AgentID: ag, State: montagev1.AgentState(1 + rng.IntN(2))}})
		}
	}
}

// The indexes stay in step with the records through any log, and a
// snapshot taken anywhere restores to the same state.
func TestIndexesFollowAnyLog(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		l := &historyLog{s: New()}
		rng := rand.New(rand.NewPCG(seed, 7))
		for round := 0; round < 5; round++ {
			randomLog(l, rng, 60)
			checkIndex(t, l.s)
			got, err := Restore(bytes.NewReader(snapBytes(t, l.s)))
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, fmt.Sprintf("seed %d round %d", seed, round), got, l.s)
		}
	}
}

// A frozen view does not change while Apply goes on: what it writes is the
// state at the moment it was taken, even with Apply running beside it
// (the race detector checks the sharing).
func TestFrozenViewIsPointInTime(t *testing.T) {
	l := &historyLog{s: New()}
	rng := rand.New(rand.NewPCG(3, 3))
	randomLog(l, rng, 200)
	atFreeze := asJSON(l.s)
	wantBytes := snapBytes(t, l.s) // Snapshot freezes too; take another view
	f := l.s.Freeze()
	var wg sync.WaitGroup
	var written bytes.Buffer
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, werr = f.WriteTo(&written)
	}()
	randomLog(l, rng, 400) // Apply goes on
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if !bytes.Equal(written.Bytes(), wantBytes) {
		got, _ := Restore(bytes.NewReader(written.Bytes()))
		t.Fatalf("the view changed while it was written:\n%.2000s\nwant\n%.2000s", asJSON(got), atFreeze)
	}
	if asJSON(l.s) == atFreeze {
		t.Fatal("the log changed nothing; the test proves nothing")
	}
	checkIndex(t, l.s)
}

func writeWithVersion(t *testing.T, v uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	zw := s2.NewWriter(&buf)
	if _, err := protodelim.MarshalTo(zw, &statev1.Header{Version: v}); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
