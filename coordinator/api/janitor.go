package api

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/retention"
)

func (s *Server) janitorLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(s.cfg.JanitorInterval):
		}
		if s.node.IsLeader() && s.node.Ready() {
			s.janitor(ctx)
		}
	}
}

// janitor does the storage housekeeping retention.Plan asks for and aborts
// multipart uploads no live lease owns. Each step does its storage work
// first and then records it through raft, and every step can run twice, so
// a crash at any point leaves nothing half-done for good.
func (s *Server) janitor(ctx context.Context) {
	var actions []retention.Action
	s.node.View(func(st *fsm.State) {
		actions = retention.Plan(st, s.clock.Now(), retention.Policy{Retention: s.cfg.Retention, PurgeDelay: s.cfg.PurgeDelay})
	})
	for _, a := range actions {
		if ctx.Err() != nil || !s.node.IsLeader() {
			return
		}
		var err error
		switch a.Kind {
		case retention.Finalize:
			err = s.finalize(ctx, a.JobID)
		case retention.PurgeSegments:
			err = s.purgeSegments(ctx, a.JobID)
		case retention.Delete:
			err = s.deleteJob(ctx, a.JobID)
		}
		if err != nil {
			s.log.Warn("housekeeping failed; will retry", "job", a.JobID, "step", a.Kind.String(), "err", err)
		} else {
			s.log.Info("housekeeping done", "job", a.JobID, "step", a.Kind.String())
		}
	}
	s.abortOrphanUploads(ctx)
	s.evictCache(ctx)
	s.collectAgents()
}

// collectAgents forgets agents this leader has not heard from for AgentGC
// (counted from its election at the earliest: it cannot know of calls
// before), so the state does not grow with every PC that ever joined.
// Agents holding a lease stay (Apply refuses them).
func (s *Server) collectAgents() {
	if s.cfg.AgentGC <= 0 {
		return
	}
	now := s.clock.Now()
	s.mu.Lock()
	since := s.leaderSince
	last := make(map[string]time.Time, len(s.lastSeen))
	for id, t := range s.lastSeen {
		last[id] = t
	}
	s.mu.Unlock()
	var gone []string
	s.node.View(func(st *fsm.State) {
		for id := range st.Agents {
			seen := last[id]
			if seen.Before(since) {
				seen = since
			}
			if now.Sub(seen) > s.cfg.AgentGC {
				gone = append(gone, id)
			}
		}
	})
	sort.Strings(gone)
	for _, id := range gone {
		resp, err := s.node.Apply(&fsm.Command{At: now.UTC(), RemoveAgent: &fsm.RemoveAgentCmd{AgentID: id}})
		if err != nil || resp.Err != nil {
			continue // busy, or gone meanwhile: the next pass looks again
		}
		s.mu.Lock()
		delete(s.lastSeen, id)
		s.mu.Unlock()
		s.log.Info("agent forgotten: not seen for longer than -agent-gc", "agent", id, "agent_gc", s.cfg.AgentGC)
	}
}

// finalize copies each committed output to its stable key and records the
// new keys; the attempt objects go with the segments.
func (s *Server) finalize(ctx context.Context, jobID string) error {
	var outputs map[string]string
	s.node.View(func(st *fsm.State) {
		if j := st.Jobs[jobID]; j != nil {
			outputs = map[string]string{}
			for k, v := range j.Outputs {
				outputs[k] = v
			}
		}
	})
	if outputs == nil {
		return nil
	}
	stable := map[string]string{}
	for name, key := range outputs {
		dst := blob.OutputKey(jobID, name)
		if _, known := blob.Outputs[name]; !known {
			dst = key
		}
		if key != dst {
			if err := s.store.Copy(ctx, key, dst); err != nil {
				return fmt.Errorf("copy %s: %w", name, err)
			}
		}
		stable[name] = dst
	}
	_, err := s.apply(&fsm.Command{Finalize: &fsm.FinalizeCmd{JobID: jobID, Outputs: stable}})
	return err
}

// deletePrefix deletes every object and unfinished upload under prefix.
func (s *Server) deletePrefix(ctx context.Context, prefix string) error {
	keys, err := s.store.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.store.Delete(ctx, k); err != nil {
			return err
		}
	}
	ups, err := s.store.ListMultipart(ctx, prefix)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if err := s.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) purgeSegments(ctx context.Context, jobID string) error {
	for _, p := range []string{blob.SegmentPrefix(jobID), blob.JobPrefix(jobID) + "attempts/"} {
		if err := s.deletePrefix(ctx, p); err != nil {
			return err
		}
	}
	_, err := s.apply(&fsm.Command{PurgeSegments: &fsm.JobCmd{JobID: jobID}})
	return err
}

// deleteJob marks the job as going (so every coordinator stops offering its
// outputs), deletes its objects, then forgets it.
func (s *Server) deleteJob(ctx context.Context, jobID string) error {
	deleting := false
	s.node.View(func(st *fsm.State) { deleting = st.Jobs[jobID] != nil && st.Jobs[jobID].Deleting })
	if !deleting {
		if _, err := s.apply(&fsm.Command{MarkDeleting: &fsm.JobCmd{JobID: jobID}}); err != nil {
			return err
		}
	}
	if err := s.deletePrefix(ctx, blob.JobPrefix(jobID)); err != nil {
		return err
	}
	_, err := s.apply(&fsm.Command{RemoveJob: &fsm.JobCmd{JobID: jobID}})
	return err
}

func (s *Server) abortOrphanUploads(ctx context.Context) {
	ups, err := s.store.ListMultipart(ctx, "jobs/")
	if err != nil {
		s.log.Warn("list unfinished uploads", "err", err)
		return
	}
	var orphans []blob.Upload
	s.node.View(func(st *fsm.State) { orphans = retention.Orphaned(st, ups) })
	for _, u := range orphans {
		if err := s.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil {
			s.log.Warn("abort orphaned upload", "key", u.Key, "err", err)
			continue
		}
		s.log.Info("aborted an upload no lease owns", "key", u.Key, "upload", u.UploadID)
	}
}
