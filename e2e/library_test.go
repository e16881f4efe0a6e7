package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stream-montages/montage/coordinator/fsm"
	"github.com/stream-montages/montage/coordinator/recurring"
	"github.com/stream-montages/montage/coordinator/webhook"
	"github.com/stream-montages/montage/internal/clock"
	"github.com/stream-montages/montage/internal/library"
)

// A CSV with a bad row imports nothing and names the row; the good file
// imports; importing it again adds nothing; list filters by streamer and
// stream date.
func TestHighlightImport(t *testing.T) {
	c := startCoordinator(t, t.TempDir(), freePort(t), "-dev")
	dir := t.TempDir()
	good := "streamer,url,at,duration,title,date,score,tags\n" +
		"alice," + mediaURL + "/a.mp4,1,2,Opener,2026-11-02,5,clutch\n" +
		"alice," + mediaURL + "/a.mp4,4,2,Second,2026-11-05,1,\n" +
		"bob," + mediaURL + "/b.mp4,2,2,Bob's,2026-11-03,3,funny;clutch\n"
	bad := good + "carol," + mediaURL + "/c.mp4,soon,2,Broken,2026-11-03,1,\n"
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r := ctl(t, c.url, "highlights", "import", write("bad.csv", bad))
	if r.code == 0 || !strings.Contains(r.stderr, "line 5: at:") || !strings.Contains(r.stderr, "nothing imported") {
		t.Fatalf("a bad row: exit %d\n%s", r.code, r.stderr)
	}
	if out := ctl(t, c.url, "highlights", "list", "-o", "json").stdout; strings.Contains(out, "alice") {
		t.Fatalf("a refused file imported rows:\n%s", out)
	}
	if r := ctl(t, c.url, "highlights", "import", write("good.csv", good)); r.code != 0 || !strings.Contains(r.stdout, "3 rows: 3 added, 0 updated, 0 unchanged") {
		t.Fatalf("import: %s %s", r.stdout, r.stderr)
	}
	if r := ctl(t, c.url, "highlights", "import", write("good.csv", good)); r.code != 0 || !strings.Contains(r.stdout, "3 rows: 0 added, 0 updated, 3 unchanged") {
		t.Fatalf("re-import: %s %s", r.stdout, r.stderr)
	}
	if r := ctl(t, c.url, "highlights", "add", mediaURL+"/c.mp4", "--streamer", "carol", "--at", "0:03", "--date", "2026-11-04"); r.code != 0 || !strings.HasPrefix(r.stdout, "added h") {
		t.Fatalf("add: %s %s", r.stdout, r.stderr)
	}
	if r := ctl(t, c.url, "highlights", "add", mediaURL+"/c.mp4", "--streamer", "carol", "--at", "3", "--duration", "900"); r.code == 0 || !strings.Contains(r.stderr, "duration: must be between 1 and 600") {
		t.Fatalf("a bad add: %d %s", r.code, r.stderr)
	}
	var list struct {
		Highlights []struct {
			Streamer string `json:"streamer"`
			Title    string `json:"title"`
		} `json:"highlights"`
		Total int `json:"total"`
	}
	out := ctl(t, c.url, "highlights", "list", "--streamer", "alice", "--since", "2026-11-03", "-o", "json").stdout
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Total != 1 || list.Highlights[0].Title != "Second" {
		t.Fatalf("alice since the 3rd: %v\n%s", err, out)
	}
	if out := ctl(t, c.url, "highlights", "list", "--tag", "clutch").stdout; !strings.Contains(out, "Opener") || !strings.Contains(out, "Bob's") || strings.Contains(out, "Second") {
		t.Fatalf("tag clutch:\n%s", out)
	}
}

// A feed is polled with its ETag: an unchanged feed costs one 304 and
// changes nothing; a changed one is upserted.
func TestFeedPollingWithETags(t *testing.T) {
	var mu sync.Mutex
	body := "streamer,url,at,date\nalice," + mediaURL + "/a.mp4,1,2026-11-02\n"
	etag := `"v1"`
	var ok200, not304 int
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			not304++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		ok200++
		w.Header().Set("ETag", etag)
		io.WriteString(w, body)
	}))
	defer feed.Close()
	clk := filepath.Join(t.TempDir(), "clock")
	c := startCoordinatorEnv(t, []string{"MONTAGE_TEST_CLOCK_FILE=" + clk}, t.TempDir(), freePort(t), "-dev")
	if r := ctl(t, c.url, "feeds", "add", "clips", feed.URL+"/clips.csv", "--every", "10m"); r.code != 0 {
		t.Fatalf("feeds add: %s", r.stderr)
	}
	waitFor(t, 30*time.Second, "the first poll", func() bool { return strings.Contains(ctl(t, c.url, "highlights", "list").stdout, "alice") })
	counts := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return ok200, not304
	}
	if err := clock.SetOffset(clk, 11*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a conditional poll", func() bool { _, n := counts(); return n == 1 })
	if ok, _ := counts(); ok != 1 {
		t.Fatalf("%d full answers for an unchanged feed; want the first only", ok)
	}
	mu.Lock()
	body += "bob," + mediaURL + "/b.mp4,2,2026-11-03\n"
	etag = `"v2"`
	mu.Unlock()
	if err := clock.SetOffset(clk, 22*time.Minute); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the changed feed", func() bool { return strings.Contains(ctl(t, c.url, "highlights", "list").stdout, "bob") })
	out := ctl(t, c.url, "feeds", "list", "-o", "json").stdout
	var fl struct {
		Feeds []struct {
			Polls       int    `json:"polls"`
			NotModified int    `json:"not_modified"`
			Rows        int    `json:"rows"`
			ETag        string `json:"etag"`
		} `json:"feeds"`
	}
	if err := json.Unmarshal([]byte(out), &fl); err != nil || len(fl.Feeds) != 1 {
		t.Fatalf("feeds list: %v\n%s", err, out)
	}
	if f := fl.Feeds[0]; f.Polls != 3 || f.NotModified != 1 || f.Rows != 2 || f.ETag != `"v2"` {
		t.Errorf("feed after three polls: %+v", f)
	}
}

// The seed's scheduler on a real cluster: three coordinators on one
// clock a test moves, a library of 3 streamers × 10 days, a weekly
// per-streamer schedule and a weekly top-per-streamer one with webhooks.
// Three weekly slots pass; the leader is SIGKILLed at the second slot's
// fire time. The result is exactly the expected montages, none doubled or
// missing, and each webhook arrives exactly once, after a 500 the first time.
func TestSchedulesFireExactlyOnce(t *testing.T) {
	clk := filepath.Join(t.TempDir(), "clock")
	h := startHAEnv(t, true, []string{"MONTAGE_TEST_CLOCK_FILE=" + clk}, "-retention", "8760h", "-agent-gc", "0")
	leader := h.leader(t, 0)
	urls := make([]string, 3)
	for i, c := range h.coords {
		urls[i] = c.url
	}
	startAgent(t, strings.Join(urls, ","), t.TempDir())

	// Day 0 is the Monday after tomorrow; slot k is day 7k at 09:00.
	now := time.Now().UTC()
	d0 := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	for d0.Weekday() != time.Monday {
		d0 = d0.AddDate(0, 0, 1)
	}
	slot := func(k int) time.Time { return d0.AddDate(0, 0, 7*k).Add(9 * time.Hour) }
	streamers := []string{"alice", "bob", "carol"}
	var csv strings.Builder
	csv.WriteString("streamer,url,at,duration,title,date,score\n")
	for si, s := range streamers {
		for d := 0; d < 10; d++ {
			// Scores make each streamer's best day differ; at differs per row.
			fmt.Fprintf(&csv, "%s,%s/a.mp4,%.1f,1,%s day %d,%s,%d\n", s, mediaURL, float64(d)+0.3*float64(si), s, d,
				d0.AddDate(0, 0, d).Format(time.DateOnly), (d*7+si*3)%10)
		}
	}
	lib := filepath.Join(t.TempDir(), "library.csv")
	if err := os.WriteFile(lib, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := ctl(t, urls[0], "highlights", "import", lib); r.code != 0 || !strings.Contains(r.stdout, "30 added") {
		t.Fatalf("import: %s %s", r.stdout, r.stderr)
	}

	const secret = "e2e-webhook-secret-0123456789"
	var mu sync.Mutex
	attempts := map[string][]int{} // job → statuses answered
	badSig := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p webhook.Payload
		mu.Lock()
		defer mu.Unlock()
		if !webhook.Verify(secret, b, r.Header.Get(webhook.SignatureHeader)) || json.Unmarshal(b, &p) != nil || p.JobID != r.Header.Get(webhook.DeliveryHeader) {
			badSig++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		status := http.StatusOK
		if len(attempts[p.JobID]) == 0 {
			status = http.StatusInternalServerError // the first attempt of each job fails
		}
		attempts[p.JobID] = append(attempts[p.JobID], status)
		w.WriteHeader(status)
	}))
	defer hook.Close()
	profile := writeSpec(t, "profile: {resolution: 320x180, fps: 25, loudness: \"off\", fade: \"0\"}\n")
	for name, group := range map[string]string{"weekly": "--per-streamer", "top": "--top-per-streamer"} {
		if r := ctl(t, urls[1], "schedule", "add", name, "--cron", "0 9 * * MON", "--window", "7d", group, "--profile", profile,
			"--webhook", hook.URL+"/hook", "--webhook-secret", secret); r.code != 0 {
			t.Fatalf("schedule add %s: %s", name, r.stderr)
		}
	}

	type schedView struct {
		Name     string `json:"name"`
		LastSlot string `json:"last_slot"`
		History  []struct {
			Slot   string   `json:"slot"`
			JobIDs []string `json:"job_ids"`
			Note   string   `json:"note"`
		} `json:"history"`
	}
	schedules := func(via string) map[string]schedView {
		var v struct {
			Schedules []schedView `json:"schedules"`
		}
		r := ctl(t, via, "schedule", "list", "-o", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil {
			return nil
		}
		out := map[string]schedView{}
		for _, s := range v.Schedules {
			out[s.Name] = s
		}
		return out
	}
	setClock := func(at time.Time) {
		if err := clock.SetOffset(clk, time.Until(at)); err != nil {
			t.Fatal(err)
		}
	}
	delivered := func(jobs []string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, j := range jobs {
			if len(attempts[j]) < 2 {
				return false
			}
		}
		return true
	}
	var allJobs []string
	// pass moves the clock to slot k (killing the leader right there when
	// asked), waits for both schedules to fire it and its montages and
	// webhooks to be done, and returns the jobs each schedule made.
	pass := func(k int, kill bool) map[string][]string {
		setClock(slot(k).Add(time.Second))
		via := urls[(leader+1)%3]
		if kill {
			h.coords[leader].kill(syscall.SIGKILL)
		}
		jobs := map[string][]string{}
		waitFor(t, 90*time.Second, fmt.Sprintf("both schedules to fire slot %d", k), func() bool {
			sv := schedules(via)
			for _, name := range []string{"weekly", "top"} {
				s, ok := sv[name]
				if !ok || len(s.History) == 0 {
					return false
				}
				f := s.History[len(s.History)-1]
				if ts, _ := time.Parse(time.RFC3339, f.Slot); !ts.Equal(slot(k)) {
					return false
				}
				jobs[name] = f.JobIDs
			}
			return true
		})
		t.Logf("slot %d fired: %v", k, jobs)
		var made []string
		for _, js := range jobs {
			made = append(made, js...)
		}
		for _, id := range made {
			if j := waitJobDone(t, via, id, 3*time.Minute); j.GetState().String() != "JOB_STATE_SUCCEEDED" {
				t.Fatalf("job %s: %s %s", id, j.GetState(), j.GetError())
			}
		}
		waitFor(t, 60*time.Second, "each webhook's first (refused) attempt", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, j := range made {
				if len(attempts[j]) == 0 {
					return false
				}
			}
			return true
		})
		t.Logf("slot %d: montages done, first webhook attempts refused", k)
		// The retry is due 30-36 s later on the coordinators' clock.
		setClock(slot(k).Add(2 * time.Minute))
		waitFor(t, 60*time.Second, "each webhook delivered on its retry", func() bool { return delivered(made) })
		allJobs = append(allJobs, made...)
		return jobs
	}

	first := pass(1, false)
	second := pass(2, true)
	survivor := urls[(leader+1)%3]
	newLeader := h.leader(t, (leader+1)%3)
	if newLeader == leader {
		t.Fatal("the killed coordinator still leads")
	}
	// Slot 3: no highlights in its window; no job, a note in the history.
	setClock(slot(3).Add(time.Second))
	defer func() {
		if t.Failed() {
			t.Logf("schedule list:\n%s\n%s", ctl(t, survivor, "schedule", "list").stdout, ctl(t, survivor, "schedule", "list", "-o", "json").stdout)
		}
	}()
	// The history holds slot 0 too (the Monday before the library's first
	// day, caught up when the clock jumped to slot 1): four slots, each once.
	waitFor(t, 60*time.Second, "slot 3 to fire empty", func() bool {
		sv := schedules(survivor)
		for _, name := range []string{"weekly", "top"} {
			s := sv[name]
			if len(s.History) != 4 {
				return false
			}
			for i, f := range s.History {
				ts, _ := time.Parse(time.RFC3339, f.Slot)
				empty := i == 0 || i == 3
				if !ts.Equal(slot(i)) || empty != (len(f.JobIDs) == 0) || empty != strings.Contains(f.Note, "no highlights in the window") {
					return false
				}
			}
		}
		return true
	})

	// What the library says each slot's montages hold, from its rows.
	rows, err := library.Parse(strings.NewReader(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	var hs []*fsm.Highlight
	for _, r := range rows {
		hs = append(hs, &fsm.Highlight{ID: library.ID(r.URL, r.At), Streamer: r.Streamer, URL: r.URL, At: r.At, Duration: r.Duration,
			Title: r.Title, Date: r.Date, Score: r.Score})
	}
	libFn := func(s string, f func(*fsm.Highlight)) {
		for _, h := range hs {
			if s == "" || h.Streamer == s {
				f(h)
			}
		}
	}
	type montageView struct {
		JobID      string   `json:"job_id"`
		Schedule   string   `json:"schedule"`
		Slot       string   `json:"slot"`
		Streamers  []string `json:"streamers"`
		Duration   float64  `json:"duration_seconds"`
		Highlights []struct {
			At    float64 `json:"at_seconds"`
			Title string  `json:"title"`
		} `json:"highlights"`
	}
	var cat struct {
		Montages []montageView `json:"montages"`
	}
	if r := ctl(t, survivor, "montages", "list", "-o", "json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &cat) != nil {
		t.Fatalf("montages list: %s %s", r.stdout, r.stderr)
	}
	if len(cat.Montages) != 8 {
		t.Fatalf("%d montages in the catalog, want 8 (3 per-streamer + 1 top, two weeks)", len(cat.Montages))
	}
	byJob := map[string]montageView{}
	for _, m := range cat.Montages {
		if _, dup := byJob[m.JobID]; dup {
			t.Fatalf("montage %s listed twice", m.JobID)
		}
		byJob[m.JobID] = m
	}
	for k, made := range map[int]map[string][]string{1: first, 2: second} {
		for name, jobs := range made {
			m := &fsm.MontageSchedule{Name: name, Cron: "0 9 * * MON", Window: 7 * 24 * time.Hour, Group: map[string]string{"weekly": "per-streamer", "top": "top-per-streamer"}[name]}
			want := recurring.Select(m, slot(k), libFn)
			if len(jobs) != len(want) {
				t.Fatalf("slot %d %s: %d montages, want %d", k, name, len(jobs), len(want))
			}
			for i, id := range jobs {
				got := byJob[id]
				if got.Schedule != name || !slices.Equal(got.Streamers, want[i].Streamers) || len(got.Highlights) != len(want[i].Highlights) {
					t.Fatalf("slot %d %s montage %d: %+v, want streamers %v and %d highlights", k, name, i, got, want[i].Streamers, len(want[i].Highlights))
				}
				for x, hl := range want[i].Highlights {
					if got.Highlights[x].At != hl.At {
						t.Errorf("slot %d %s montage %d highlight %d starts at %v, want %v (%s)", k, name, i, x, got.Highlights[x].At, hl.At, hl.Title)
					}
				}
				if d := got.Duration - float64(len(want[i].Highlights)); d < -0.05 || d > 0.05 {
					t.Errorf("slot %d %s montage %d lasts %.3f s for %d one-second highlights", k, name, i, got.Duration, len(want[i].Highlights))
				}
			}
		}
	}
	// Independently of the selection code: week 1 per streamer holds days
	// 0-6, week 2 days 7-9; the top montage holds each streamer's best.
	if n := len(byJob[first["weekly"][0]].Highlights); n != 7 {
		t.Errorf("week 1 per-streamer montage has %d highlights, want 7", n)
	}
	if n := len(byJob[second["weekly"][2]].Highlights); n != 3 {
		t.Errorf("week 2 per-streamer montage has %d highlights, want 3", n)
	}
	top1, top2 := byJob[first["top"][0]], byJob[second["top"][0]]
	if len(top1.Highlights) != 3 {
		t.Fatalf("top of week 1: %d highlights, want one per streamer", len(top1.Highlights))
	}
	for _, hl := range top1.Highlights {
		// Titled "alice: alice day 4": the streamer, then the row's title.
		var d int
		name, rest, _ := strings.Cut(hl.Title, ": ")
		si := slices.Index(streamers, name)
		if _, err := fmt.Sscanf(rest, name+" day %d", &d); err != nil || si < 0 {
			t.Fatalf("top highlight titled %q: %v", hl.Title, err)
		}
		for e := 0; e < 7; e++ {
			if (e*7+si*3)%10 > (d*7+si*3)%10 {
				t.Errorf("top of week 1 took %q, but day %d scores higher", hl.Title, e)
			}
		}
	}
	order := func(m montageView) string {
		var s []string
		for _, hl := range m.Highlights {
			name, _, _ := strings.Cut(hl.Title, ":")
			s = append(s, name)
		}
		return strings.Join(s, ",")
	}
	t.Logf("top-per-streamer order: week 1 %s, week 2 %s", order(top1), order(top2))

	// A slot fires once: by hand it is refused, whatever the leader.
	if r := ctl(t, survivor, "schedule", "run", "weekly", "--at", slot(1).Add(time.Hour).Format(time.RFC3339)); r.code == 0 || !strings.Contains(r.stderr, "fired already") {
		t.Errorf("a second fire of slot 1: %d %s %s", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if badSig != 0 {
		t.Errorf("%d webhook posts with a bad signature or body", badSig)
	}
	if len(attempts) != 8 {
		t.Errorf("webhooks for %d jobs, want 8", len(attempts))
	}
	for _, id := range allJobs {
		if a := attempts[id]; !slices.Equal(a, []int{500, 200}) {
			t.Errorf("job %s: webhook answers %v, want exactly one 500 then one 200", id, a)
		}
	}
	if get := ctl(t, survivor, "get", allJobs[0]).stdout; !strings.Contains(get, "delivered") || !strings.Contains(get, "after 2 attempt(s)") {
		t.Errorf("montagectl get does not show the delivery:\n%s", get)
	}
}

// A job submitted with --webhook announces its end once, signed, with
// links that download its outputs.
func TestJobWebhook(t *testing.T) {
	const secret = "job-webhook-secret-0123456789"
	got := make(chan webhook.Payload, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var p webhook.Payload
		if !webhook.Verify(secret, b, r.Header.Get(webhook.SignatureHeader)) || json.Unmarshal(b, &p) != nil {
			t.Errorf("a bad delivery: %s %s", r.Header.Get(webhook.SignatureHeader), b)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- p
	}))
	defer hook.Close()
	c := startCoordinator(t, t.TempDir(), freePort(t), "-dev")
	spec := writeSpec(t, "name: hooked\nprofile: {resolution: 320x180, fps: 25}\nhighlights:\n  - {url: "+mediaURL+"/a.mp4, at: 1, duration: 2, title: One}\n")
	r := ctl(t, c.url, "submit", "-q", "--webhook", hook.URL+"/done", "--webhook-secret", secret, spec)
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	var p webhook.Payload
	select {
	case p = <-got:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no webhook:\n%s", ctl(t, c.url, "get", id).stdout)
	}
	if p.JobID != id || p.Event != "montage.succeeded" || p.Name != "hooked" || p.Chapters != "0:00 One\n" || p.Duration < 1.9 || p.Links["montage"] == "" || p.LinksExpire == nil {
		t.Fatalf("payload %+v", p)
	}
	resp, err := http.Get(p.Links["montage"])
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n < 1000 {
		t.Fatalf("the montage link: %s, %d bytes", resp.Status, n)
	}
	waitFor(t, 30*time.Second, "the delivery in montagectl get", func() bool {
		return strings.Contains(ctl(t, c.url, "get", id).stdout, "delivered")
	})
	// Delivered is committed after the POST returned: from then on no
	// claim is accepted, so nothing more can arrive than what has.
	select {
	case again := <-got:
		t.Fatalf("a second delivery: %+v", again)
	default:
	}
	if out := ctl(t, c.url, "get", id, "-o", "json").stdout; strings.Contains(out, secret) {
		t.Error("montagectl get shows the webhook secret")
	}
	if out := ctl(t, c.url, "montages", "show", id).stdout; !strings.Contains(out, "One") || !strings.Contains(out, "Chapters:") {
		t.Errorf("montages show:\n%s", out)
	}
}
