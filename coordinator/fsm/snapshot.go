package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	statev1 "github.com/stream-montages/montage/proto/montage/state/v1"
)

// Snapshot format.
//
// Version 1 (until release 0.x) was the State encoded as one JSON value.
// Version 2 is the magic below, then an S2 stream (klauspost/compress) of
// length-delimited protobuf records (proto/montage/state/v1): a Header,
// every agent, cache entry, job and task, and an End that counts them, so
// a truncated snapshot is refused rather than half restored. Records are
// written one at a time from a Frozen view: memory stays flat and Apply
// goes on meanwhile.
const (
	SnapshotVersion = 2
	snapshotMagic   = "MONTSNAP"
)

// Maps in deterministic order: equal states give equal bytes.
var marshal = protodelim.MarshalOptions{MarshalOptions: proto.MarshalOptions{Deterministic: true}}

// ErrSnapshotVersion means a snapshot was written by a newer coordinator.
var ErrSnapshotVersion = errors.New("snapshot version is newer than this coordinator understands")

// Snapshot writes the whole state (for tests and tools; the raft FSM
// writes a Frozen view).
func (s *State) Snapshot(w io.Writer) error {
	_, err := s.Freeze().WriteTo(w)
	return err
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteTo writes the view in the current format and returns the bytes
// written. Equal states give equal bytes: jobs go in submission order and
// everything else by key.
func (f *Frozen) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	if _, err := io.WriteString(cw, snapshotMagic); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	zw := s2.NewWriter(cw, s2.WriterConcurrency(2))
	bw := bufio.NewWriterSize(zw, 256<<10)
	var records uint64
	put := func(r *statev1.Record) error {
		records++
		if _, err := marshal.MarshalTo(bw, r); err != nil {
			return fmt.Errorf("write snapshot record %d: %w", records, err)
		}
		return nil
	}
	hdr := &statev1.Header{Version: SnapshotVersion, AppliedIndex: f.AppliedIndex,
		Jobs: uint64(f.jobCount()), Tasks: uint64(len(f.Tasks)), Agents: uint64(len(f.Agents)), CacheEntries: uint64(len(f.Cache))}
	if _, err := marshal.MarshalTo(bw, hdr); err != nil {
		return cw.n, fmt.Errorf("write snapshot header: %w", err)
	}
	// The view's slices are sorted here, beside Apply, not while frozen.
	slices.SortFunc(f.Agents, func(a, b *Agent) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(f.Cache, func(a, b *CacheEntry) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(f.CacheLatest, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	tasks := make(map[string]*Task, len(f.Tasks))
	for _, t := range f.Tasks {
		tasks[t.ID] = t
	}
	for _, a := range f.Agents {
		if err := put(&statev1.Record{Item: &statev1.Record_Agent{Agent: agentOut(a)}}); err != nil {
			return cw.n, err
		}
	}
	for _, e := range f.Cache {
		if err := put(&statev1.Record{Item: &statev1.Record_CacheEntry{CacheEntry: cacheOut(e)}}); err != nil {
			return cw.n, err
		}
	}
	for _, pk := range f.CacheLatest {
		if err := put(&statev1.Record{Item: &statev1.Record_CacheLatest{CacheLatest: &statev1.CacheLatest{Plan: pk[0], Key: pk[1]}}}); err != nil {
			return cw.n, err
		}
	}
	slices.SortFunc(f.Enrollments, func(a, b Enrollment) int { return strings.Compare(a.Hash, b.Hash) })
	for _, e := range f.Enrollments {
		if err := put(&statev1.Record{Item: &statev1.Record_Enrollment{Enrollment: &statev1.Enrollment{
			Hash: e.Hash, Name: e.Name, ExpiresAt: unixNano(e.ExpiresAt), CreatedAt: unixNano(e.CreatedAt)}}}); err != nil {
			return cw.n, err
		}
	}
	slices.SortFunc(f.Coordinators, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	for _, c := range f.Coordinators {
		if err := put(&statev1.Record{Item: &statev1.Record_Coordinator{Coordinator: &statev1.Coordinator{Id: c[0], ApiAddr: c[1]}}}); err != nil {
			return cw.n, err
		}
	}
	slices.SortFunc(f.Highlights, func(a, b *Highlight) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(f.Feeds, func(a, b *Feed) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(f.MontageSchedules, func(a, b *MontageSchedule) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(f.Catalog, func(a, b *Montage) int { return strings.Compare(a.JobID, b.JobID) })
	putJSON := func(kind string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("write snapshot %s: %w", kind, err)
		}
		return put(&statev1.Record{Item: &statev1.Record_Record{Record: &statev1.JSONRecord{Kind: kind, Json: b}}})
	}
	for _, h := range f.Highlights {
		if err := putJSON("highlight", h); err != nil {
			return cw.n, err
		}
	}
	for _, x := range f.Feeds {
		if err := putJSON("feed", x); err != nil {
			return cw.n, err
		}
	}
	for _, x := range f.MontageSchedules {
		if err := putJSON("schedule", x); err != nil {
			return cw.n, err
		}
	}
	for _, x := range f.Catalog {
		if err := putJSON("montage", x); err != nil {
			return cw.n, err
		}
	}
	for j := range f.jobs() {
		if err := put(&statev1.Record{Item: &statev1.Record_Job{Job: jobOut(j)}}); err != nil {
			return cw.n, err
		}
		for _, tid := range j.TaskIDs {
			if t := tasks[tid]; t != nil {
				delete(tasks, tid)
				if err := put(&statev1.Record{Item: &statev1.Record_Task{Task: taskOut(t)}}); err != nil {
					return cw.n, err
				}
			}
		}
	}
	// Tasks no plan names (there should be none) are kept all the same.
	for _, id := range slices.Sorted(maps.Keys(tasks)) {
		if err := put(&statev1.Record{Item: &statev1.Record_Task{Task: taskOut(tasks[id])}}); err != nil {
			return cw.n, err
		}
	}
	if err := put(&statev1.Record{Item: &statev1.Record_End{End: &statev1.End{Records: records + 1}}}); err != nil {
		return cw.n, err
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return cw.n, fmt.Errorf("write snapshot: %w", err)
	}
	return cw.n, nil
}

// Restore reads a snapshot of any version this coordinator knows and
// migrates it to the current state.
func Restore(r io.Reader) (*State, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, err := br.Peek(len(snapshotMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("restore state: %w", err)
	}
	switch {
	case string(head) == snapshotMagic:
		_, _ = br.Discard(len(snapshotMagic))
		return restoreV2(br)
	case len(bytes.TrimLeft(head, " \t\r\n")) > 0 && bytes.TrimLeft(head, " \t\r\n")[0] == '{':
		return restoreV1(br)
	}
	return nil, fmt.Errorf("restore state: not a snapshot this coordinator knows (starts %q)", head)
}

func restoreV2(r io.Reader) (*State, error) {
	br := bufio.NewReaderSize(s2.NewReader(r), 256<<10)
	hdr := &statev1.Header{}
	if err := protodelim.UnmarshalFrom(br, hdr); err != nil {
		return nil, fmt.Errorf("restore state: header: %w", err)
	}
	if hdr.GetVersion() > SnapshotVersion {
		return nil, fmt.Errorf("restore state: version %d: %w (this one writes %d)", hdr.GetVersion(), ErrSnapshotVersion, SnapshotVersion)
	}
	s := New()
	s.AppliedIndex = hdr.GetAppliedIndex()
	s.Jobs = make(map[string]*Job, hdr.GetJobs())
	s.Tasks = make(map[string]*Task, hdr.GetTasks())
	opts := protodelim.UnmarshalOptions{MaxSize: 64 << 20}
	var records uint64
	for {
		rec := &statev1.Record{}
		if err := opts.UnmarshalFrom(br, rec); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("restore state: snapshot ends after %d records without its end marker", records)
			}
			return nil, fmt.Errorf("restore state: record %d: %w", records+1, err)
		}
		records++
		switch it := rec.GetItem().(type) {
		case *statev1.Record_Agent:
			a := agentIn(it.Agent)
			s.Agents[a.ID] = a
		case *statev1.Record_CacheEntry:
			e := cacheIn(it.CacheEntry)
			s.Cache[e.Key] = e
		case *statev1.Record_CacheLatest:
			s.CacheLatest[it.CacheLatest.GetPlan()] = it.CacheLatest.GetKey()
		case *statev1.Record_Enrollment:
			e := it.Enrollment
			s.Enrollments[e.GetHash()] = &Enrollment{Hash: e.GetHash(), Name: e.GetName(),
				ExpiresAt: fromUnixNano(e.GetExpiresAt()), CreatedAt: fromUnixNano(e.GetCreatedAt())}
		case *statev1.Record_Record:
			if err := s.restoreJSON(it.Record); err != nil {
				return nil, err
			}
		case *statev1.Record_Coordinator:
			s.Coordinators[it.Coordinator.GetId()] = it.Coordinator.GetApiAddr()
		case *statev1.Record_Job:
			j := jobIn(it.Job)
			s.Jobs[j.ID] = j
		case *statev1.Record_Task:
			t := taskIn(it.Task)
			s.Tasks[t.ID] = t
		case *statev1.Record_End:
			if it.End.GetRecords() != records {
				return nil, fmt.Errorf("restore state: end marker counts %d records, read %d", it.End.GetRecords(), records)
			}
			if uint64(len(s.Jobs)) != hdr.GetJobs() || uint64(len(s.Tasks)) != hdr.GetTasks() {
				return nil, fmt.Errorf("restore state: header promised %d jobs and %d tasks, read %d and %d", hdr.GetJobs(), hdr.GetTasks(), len(s.Jobs), len(s.Tasks))
			}
			s.Reindex()
			return s, nil
		default:
			// A record kind from a newer minor version: skipping it is
			// safe only because a newer major bumps the header version.
		}
	}
}

// v1State is the JSON layout of version-1 snapshots.
type v1State struct {
	Jobs         map[string]*Job        `json:"jobs"`
	Tasks        map[string]*Task       `json:"tasks"`
	Agents       map[string]*Agent      `json:"agents"`
	Idempotency  map[string]string      `json:"idempotency"`
	Cache        map[string]*CacheEntry `json:"cache"`
	CacheLatest  map[string]string      `json:"cache_latest"`
	AppliedIndex uint64                 `json:"applied_index"`
}

// restoreV1 migrates a version-1 snapshot: idempotency keys move into
// their jobs, and jobs whose segments were purged are compacted.
func restoreV1(r io.Reader) (*State, error) {
	var v v1State
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return nil, fmt.Errorf("restore state (version 1): %w", err)
	}
	s := New()
	s.AppliedIndex = v.AppliedIndex
	for id, j := range v.Jobs {
		s.Jobs[id] = j
	}
	for id, t := range v.Tasks {
		s.Tasks[id] = t
	}
	for id, a := range v.Agents {
		s.Agents[id] = a
	}
	for k, e := range v.Cache {
		s.Cache[k] = e
	}
	for k, e := range v.CacheLatest {
		s.CacheLatest[k] = e
	}
	for k, id := range v.Idempotency {
		if j := s.Jobs[id]; j != nil {
			j.IdempotencyKey = k
		}
	}
	for _, j := range s.Jobs {
		if j.Terminal() && j.SegmentsPurged {
			s.compact(j)
		}
	}
	s.Reindex()
	return s, nil
}

// restoreJSON puts back one library record of a snapshot.
func (s *State) restoreJSON(r *statev1.JSONRecord) error {
	var err error
	switch r.GetKind() {
	case "highlight":
		h := &Highlight{}
		if err = json.Unmarshal(r.GetJson(), h); err == nil {
			s.Highlights[h.ID] = h
		}
	case "feed":
		f := &Feed{}
		if err = json.Unmarshal(r.GetJson(), f); err == nil {
			s.Feeds[f.Name] = f
		}
	case "schedule":
		m := &MontageSchedule{}
		if err = json.Unmarshal(r.GetJson(), m); err == nil {
			s.MontageSchedules[m.Name] = m
		}
	case "montage":
		m := &Montage{}
		if err = json.Unmarshal(r.GetJson(), m); err == nil {
			s.Catalog[m.JobID] = m
		}
	default:
		return fmt.Errorf("snapshot record of unknown kind %q", r.GetKind())
	}
	if err != nil {
		return fmt.Errorf("snapshot %s record: %w", r.GetKind(), err)
	}
	return nil
}
