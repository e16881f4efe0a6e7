package leader

import (
	"context"
	"errors"
	"time"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
)

// Results the store could not prove from its metadata (a server that
// ignores upload checksums) wait in VERIFYING while the leader reads them
// back here, outside the agent's call: a multi-GB montage takes longer to
// read than an RPC may. A new leader finds them in the state and goes on.

// VerifySoon wakes the read-back loop (a result was just left to it).
func (l *Leader) VerifySoon() {
	select {
	case l.verifyKick <- struct{}{}:
	default:
	}
}

type pendingCheck struct {
	taskID string
	token  uint64
	res    fsm.Result
}

func (l *Leader) verifyLoop(ctx context.Context) {
	every := l.cfg.JanitorInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	inflight := map[uint64]bool{} // by lease token: one read-back per result
	done := make(chan uint64, 16)
	sem := make(chan struct{}, 2)
	for {
		select {
		case <-ctx.Done():
			return
		case tok := <-done:
			delete(inflight, tok)
			continue
		case <-l.verifyKick:
		case <-l.clock.After(every):
		}
		if !l.node.IsLeader() || !l.node.Ready() {
			continue
		}
		var todo []pendingCheck
		l.node.View(func(st *fsm.State) {
			for _, t := range st.Verifying() {
				if !inflight[t.LeaseToken] && t.Result != nil {
					todo = append(todo, pendingCheck{taskID: t.ID, token: t.LeaseToken, res: *t.Result})
				}
			}
		})
		for _, p := range todo {
			inflight[p.token] = true
			go func() {
				defer func() { done <- p.token }()
				sem <- struct{}{}
				defer func() { <-sem }()
				l.readBack(ctx, p)
			}()
		}
	}
}

// readBack reads a result's objects and reports what it found. A store
// that cannot be reached now is tried again on the next round.
func (l *Leader) readBack(ctx context.Context, p pendingCheck) {
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	start := time.Now()
	err := l.store.Verify(ctx, p.res.Key, p.res.Size, p.res.SHA256)
	for name, key := range p.res.Outputs {
		if err != nil {
			break
		}
		sum := p.res.OutputSums[name]
		err = l.store.Verify(ctx, key, sum.Size, sum.SHA256)
	}
	if err != nil && !errors.Is(err, blob.ErrMismatch) && !errors.Is(err, blob.ErrMissing) {
		l.log.Warn("read-back of a result failed; trying again", "task", p.taskID, "err", err)
		return
	}
	l.hooks.readBack(time.Since(start))
	cmd := &fsm.VerifiedCmd{TaskID: p.taskID, Token: p.token, OK: err == nil,
		BlockAfter: l.cfg.BlockAfter, QuarantineAfter: l.cfg.QuarantineAfter}
	if err != nil {
		cmd.Error = err.Error()
	}
	if _, perr := l.propose(&fsm.Command{Verified: cmd}); perr != nil {
		l.log.Warn("read-back not recorded", "task", p.taskID, "err", perr)
		return
	}
	if err != nil {
		l.log.Warn("result refused after its read-back; task requeued", "task", p.taskID, "err", err)
		return
	}
	l.log.Info("result verified by a read-back; task completed", "task", p.taskID, "size", p.res.Size)
	l.KeepSegment(p.taskID, p.res)
}
