package leader

import (
	"context"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stream-montages/montage/coordinator/blob"
	"github.com/stream-montages/montage/coordinator/fsm"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// KeepSegment keeps a committed render in the segment cache, in the
// background: the agent's completion does not wait for a copy and its
// check (a big segment on S3 takes a while), and at most two copies run at
// once. See keepSegment.
func (l *Leader) KeepSegment(taskID string, res fsm.Result) {
	if l.cfg.CacheBudget < 0 {
		return
	}
	go func() {
		l.cacheSem <- struct{}{}
		defer func() { <-l.cacheSem }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		l.keepSegment(ctx, taskID, res)
	}()
}

// keepSegment copies the object to cache/<entry key>.mp4, checks the copy,
// and indexes it after, so the index never names an object that is not
// there or not what was accepted. A failure only costs a later job a
// render, so it is logged, not returned.
func (l *Leader) keepSegment(ctx context.Context, taskID string, res fsm.Result) {
	facts := &montagev1.SourceFacts{}
	_ = proto.Unmarshal(res.Source, facts)
	identity := facts.GetIdentity()
	if identity == "" {
		return // nothing to tell a re-upload at the same URL from this source
	}
	var plan, key string
	l.node.View(func(st *fsm.State) {
		if t := st.Tasks[taskID]; t != nil && t.CacheKey != "" && !t.Cached {
			k := fsm.CacheEntryKey(t.CacheKey, identity)
			if st.Cache[k] == nil || st.CacheLatest[t.CacheKey] != k {
				plan, key = t.CacheKey, k
			}
		}
	})
	if key == "" {
		return
	}
	obj := blob.CacheKey(key)
	if err := l.store.Copy(ctx, res.Key, obj); err != nil {
		l.log.Warn("segment not cached", "task", taskID, "err", err)
		return
	}
	// The cache serves this object to later jobs as the accepted segment:
	// it must be exactly that.
	if err := l.store.Verify(ctx, obj, res.Size, res.SHA256); err != nil {
		l.log.Warn("cached copy differs from the accepted segment; not cached", "task", taskID, "err", err)
		_ = l.store.Delete(ctx, obj)
		return
	}
	if _, err := l.propose(&fsm.Command{CacheAdd: &fsm.CacheEntry{
		Key: key, Plan: plan, Identity: identity, Object: obj, Size: res.Size, SHA256: res.SHA256, Duration: res.Duration, Source: res.Source,
	}}); err != nil {
		l.log.Warn("segment not indexed", "task", taskID, "err", err)
	}
}

// evictCache keeps the cache within its budget: least recently used
// entries that no unfinished job needs go first. The index entry goes
// through raft before the object is deleted, so a job submitted meanwhile
// either saw the entry (and then Apply refuses to evict it) or did not.
func (l *Leader) evictCache(ctx context.Context) {
	if l.cfg.CacheBudget <= 0 {
		return
	}
	var victims []string
	objects := map[string]string{}
	sizes := map[string]int64{}
	l.node.View(func(st *fsm.State) {
		over := st.CacheBytes() - l.cfg.CacheBudget
		if over <= 0 {
			return
		}
		refs := st.CacheRefs()
		entries := make([]*fsm.CacheEntry, 0, len(st.Cache))
		for _, e := range st.Cache {
			if refs[e.Key] == 0 {
				entries = append(entries, e)
			}
		}
		sort.Slice(entries, func(a, b int) bool {
			if !entries[a].UsedAt.Equal(entries[b].UsedAt) {
				return entries[a].UsedAt.Before(entries[b].UsedAt)
			}
			return entries[a].Key < entries[b].Key
		})
		for _, e := range entries {
			if over <= 0 {
				break
			}
			victims = append(victims, e.Key)
			objects[e.Key] = e.Object
			sizes[e.Key] = e.Size
			over -= e.Size
		}
	})
	if len(victims) == 0 {
		return
	}
	resp, err := l.propose(&fsm.Command{CacheEvict: &fsm.CacheEvictCmd{Keys: victims}})
	if err != nil {
		l.log.Warn("cache eviction", "err", err)
		return
	}
	var freed int64
	for _, k := range resp.Evicted {
		freed += sizes[k]
		if err := l.store.Delete(ctx, objects[k]); err != nil {
			l.log.Warn("delete evicted segment", "key", objects[k], "err", err)
		}
	}
	l.hooks.evicted(len(resp.Evicted), freed)
	l.log.Info("cache evicted", "entries", len(resp.Evicted), "bytes", freed)
}
