package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

// A job whose renders a finished job already produced takes them from the
// segment cache: the agent checks each source is unchanged and renders
// nothing but the concat, and the montage is the same.
func TestCachedRerun(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t))
	agent := startAgent(t, c.url, t.TempDir())
	spec := writeSpec(t, fmt.Sprintf("profile: {resolution: 640x360, fps: 30}\nchunk_seconds: 10\nhighlights:\n  - {url: %s/a.mp4, at: 1, duration: 12, title: One}\n  - {url: %s/b.m3u8, at: 2, duration: 3, title: Two}\n", mediaURL, mediaURL))
	var montages []string
	for run := 0; run < 2; run++ {
		r := ctl(t, c.url, "submit", "--wait", "-q", spec)
		if r.code != 0 {
			t.Fatalf("run %d: %s %s", run, r.stdout, r.stderr)
		}
		id := strings.TrimSpace(r.stdout)
		j := getJob(t, c.url, id)
		checkCommittedOnce(t, j)
		cached := 0
		for _, task := range j.GetTasks() {
			if task.GetCached() {
				cached++
			}
			if task.GetType() == montagev1.TaskType_TASK_TYPE_CONCAT && task.GetCached() {
				t.Error("the concat came from the cache")
			}
		}
		if want := []int{0, 3}[run]; cached != want { // 2 chunks + 1 render
			t.Errorf("run %d: %d cached tasks, want %d", run, cached, want)
		}
		out := filepath.Join(t.TempDir(), "m.mp4")
		if r := ctl(t, c.url, "download", id, "-o", out); r.code != 0 {
			t.Fatalf("download: %s", r.stderr)
		}
		checkMontage(t, out, []float64{12, 3}, 640, 360, "30/1")
		montages = append(montages, out)
	}
	if a, b := sha(t, montages[0]), sha(t, montages[1]); a != b {
		t.Errorf("the cached rerun made a different montage (%s vs %s)", a, b)
	}
	if n := strings.Count(agent.out.String(), "task done from the cache"); n != 3 {
		t.Errorf("the agent completed %d tasks from the cache, want 3 (2 chunks and a render)", n)
	}
}

// A source re-uploaded at the same URL is rendered again: the cache keys
// what it holds by the source's identity (Last-Modified and size here), so
// the second montage shows the new file, not the stale segment.
func TestCacheNoticesAReuploadedSource(t *testing.T) {
	dir := t.TempDir()
	link := func(name string) {
		_ = os.Remove(filepath.Join(dir, "vod.mp4"))
		b, err := os.ReadFile(filepath.Join(mediaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "vod.mp4"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link("a.mp4")
	srv := serveCounting(t, "127.0.0.1:0", http.FileServer(http.Dir(dir)))
	c := startCoordinator(t, t.TempDir(), freePort(t))
	startAgent(t, c.url, t.TempDir())
	spec := writeSpec(t, fmt.Sprintf("profile: {resolution: 320x180, fps: 25}\nhighlights:\n  - {url: %s/vod.mp4, at: 1, duration: 2}\n", srv.url))
	var montages []string
	for run := 0; run < 3; run++ {
		if run == 1 {
			link("c.mp4") // another video at the same URL
		}
		r := ctl(t, c.url, "submit", "--wait", "-q", spec)
		if r.code != 0 {
			t.Fatalf("run %d: %s %s", run, r.stdout, r.stderr)
		}
		j := getJob(t, c.url, strings.TrimSpace(r.stdout))
		if cached, want := j.GetTasks()[0].GetCached(), run == 2; cached != want {
			t.Errorf("run %d: render from the cache: %v, want %v", run, cached, want)
		}
		out := filepath.Join(t.TempDir(), "m.mp4")
		if r := ctl(t, c.url, "download", j.GetId(), "-o", out); r.code != 0 {
			t.Fatalf("download: %s", r.stderr)
		}
		montages = append(montages, sha(t, out))
	}
	if montages[0] == montages[1] {
		t.Error("the montage after the re-upload is the stale one")
	}
	if montages[1] != montages[2] {
		t.Error("the unchanged source was not served from its new cache entry")
	}
}

func sha(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Over its budget, the cache drops what no unfinished job needs: the
// segments' objects go, and the same job renders again.
func TestCacheBudgetEvicts(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-cache-budget", "1", "-janitor-interval", "500ms")
	startAgent(t, c.url, t.TempDir())
	spec := writeSpec(t, fmt.Sprintf("profile: {resolution: 320x180, fps: 25}\nhighlights:\n  - {url: %s/a.mp4, at: 1, duration: 2}\n  - {url: %s/b.mp4, at: 1, duration: 2}\n", mediaURL, mediaURL))
	cacheDir := filepath.Join(c.dataDir, "objects", "cache")
	for run := 0; run < 2; run++ {
		r := ctl(t, c.url, "submit", "--wait", "-q", spec)
		if r.code != 0 {
			t.Fatalf("run %d: %s %s", run, r.stdout, r.stderr)
		}
		for _, task := range getJob(t, c.url, strings.TrimSpace(r.stdout)).GetTasks() {
			if task.GetCached() {
				t.Errorf("run %d: task %s came from a cache that is over its budget", run, task.GetId())
			}
		}
		waitFor(t, 30*time.Second, "the janitor to evict the cached segments", func() bool {
			entries, err := os.ReadDir(cacheDir)
			return err == nil && len(entries) == 0
		})
	}
	mustContain(t, c.out.String(), "cache evicted", "coordinator log")
}
