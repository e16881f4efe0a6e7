package leader

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/retention"
)

func (l *Leader) janitorLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.clock.After(l.cfg.JanitorInterval):
		}
		if l.node.IsLeader() && l.node.Ready() {
			l.janitor(ctx)
		}
	}
}

// janitor does the storage housekeeping retention.Plan asks for and aborts
// multipart uploads no live lease owns. Each step does its storage work
// first and then records it through raft, and every step can run twice, so
// a crash at any point leaves nothing half-done for good.
func (l *Leader) janitor(ctx context.Context) {
	var actions []retention.Action
	l.node.View(func(st *fsm.State) {
		actions = retention.Plan(st, l.clock.Now(), retention.Policy{Retention: l.cfg.Retention, PurgeDelay: l.cfg.PurgeDelay})
	})
	for _, a := range actions {
		if ctx.Err() != nil || !l.node.IsLeader() {
			return
		}
		var err error
		switch a.Kind {
		case retention.Finalize:
			err = l.Finalize(ctx, a.JobID)
		case retention.PurgeSegments:
			err = l.purgeSegments(ctx, a.JobID)
		case retention.Delete:
			err = l.deleteJob(ctx, a.JobID)
		}
		if err != nil {
			l.log.Warn("housekeeping failed; will retry", "job", a.JobID, "step", a.Kind.String(), "err", err)
		} else {
			l.log.Info("housekeeping done", "job", a.JobID, "step", a.Kind.String())
		}
	}
	l.abortOrphanUploads(ctx)
	l.evictCache(ctx)
	l.collectAgents()
}

// collectAgents forgets agents this leader has not heard from for AgentGC
// (counted from its election at the earliest: it cannot know of calls
// before), so the state does not grow with every PC that ever joined.
// Agents holding a lease stay (Apply refuses them).
func (l *Leader) collectAgents() {
	if l.cfg.AgentGC <= 0 {
		return
	}
	now := l.clock.Now()
	l.mu.Lock()
	since := l.leaderSince
	last := make(map[string]time.Time, len(l.lastSeen))
	for id, t := range l.lastSeen {
		last[id] = t
	}
	l.mu.Unlock()
	var gone []string
	l.node.View(func(st *fsm.State) {
		for id := range st.Agents {
			seen := last[id]
			if seen.Before(since) {
				seen = since
			}
			if now.Sub(seen) > l.cfg.AgentGC {
				gone = append(gone, id)
			}
		}
	})
	sort.Strings(gone)
	for _, id := range gone {
		resp, err := l.node.Apply(&fsm.Command{At: now.UTC(), RemoveAgent: &fsm.RemoveAgentCmd{AgentID: id}})
		if err != nil || resp.Err != nil {
			continue // busy, or gone meanwhile: the next pass looks again
		}
		l.mu.Lock()
		delete(l.lastSeen, id)
		l.mu.Unlock()
		l.log.Info("agent forgotten: not seen for longer than -agent-gc", "agent", id, "agent_gc", l.cfg.AgentGC)
	}
}

// Finalize copies each committed output to its stable key and records the
// new keys; the attempt objects go with the segments.
func (l *Leader) Finalize(ctx context.Context, jobID string) error {
	var outputs map[string]string
	l.node.View(func(st *fsm.State) {
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
			if err := l.store.Copy(ctx, key, dst); err != nil {
				return fmt.Errorf("copy %s: %w", name, err)
			}
		}
		stable[name] = dst
	}
	_, err := l.propose(&fsm.Command{Finalize: &fsm.FinalizeCmd{JobID: jobID, Outputs: stable}})
	return err
}

// deletePrefix deletes every object and unfinished upload under prefix.
func (l *Leader) deletePrefix(ctx context.Context, prefix string) error {
	keys, err := l.store.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := l.store.Delete(ctx, k); err != nil {
			return err
		}
	}
	ups, err := l.store.ListMultipart(ctx, prefix)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if err := l.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil {
			return err
		}
	}
	return nil
}

func (l *Leader) purgeSegments(ctx context.Context, jobID string) error {
	for _, p := range []string{blob.SegmentPrefix(jobID), blob.JobPrefix(jobID) + "attempts/"} {
		if err := l.deletePrefix(ctx, p); err != nil {
			return err
		}
	}
	_, err := l.propose(&fsm.Command{PurgeSegments: &fsm.JobCmd{JobID: jobID}})
	return err
}

// deleteJob marks the job as going (so every coordinator stops offering its
// outputs), deletes its objects, then forgets it.
func (l *Leader) deleteJob(ctx context.Context, jobID string) error {
	deleting := false
	l.node.View(func(st *fsm.State) { deleting = st.Jobs[jobID] != nil && st.Jobs[jobID].Deleting })
	if !deleting {
		if _, err := l.propose(&fsm.Command{MarkDeleting: &fsm.JobCmd{JobID: jobID}}); err != nil {
			return err
		}
	}
	if err := l.deletePrefix(ctx, blob.JobPrefix(jobID)); err != nil {
		return err
	}
	_, err := l.propose(&fsm.Command{RemoveJob: &fsm.JobCmd{JobID: jobID}})
	return err
}

func (l *Leader) abortOrphanUploads(ctx context.Context) {
	ups, err := l.store.ListMultipart(ctx, "jobs/")
	if err != nil {
		l.log.Warn("list unfinished uploads", "err", err)
		return
	}
	var orphans []blob.Upload
	l.node.View(func(st *fsm.State) { orphans = retention.Orphaned(st, ups) })
	for _, u := range orphans {
		if err := l.store.AbortMultipart(ctx, u.Key, u.UploadID); err != nil {
			l.log.Warn("abort orphaned upload", "key", u.Key, "err", err)
			continue
		}
		l.log.Info("aborted an upload no lease owns", "key", u.Key, "upload", u.UploadID)
	}
}
